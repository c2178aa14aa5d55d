"""The ``spinefx`` command: one thin shell with subcommands over the Python API.

Each subcommand lives in its own module of this package and exposes
``register(subparsers) -> None``; the parser it adds sets ``func`` to a callable taking the
parsed ``argparse.Namespace`` and returning an exit code. Command modules import only
argparse at module level; heavy imports (torch, monai, nibabel) happen inside ``func`` so
``spinefx --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from spinefx.errors import SpinefxError

#: Subcommand modules, in the order they appear in ``spinefx --help`` (pipeline order).
COMMAND_MODULES: tuple[str, ...] = (
    "spinefx.cli.inspect_cmd",
    "spinefx.cli.synth_cmd",
    "spinefx.cli.engine_cmd",
    "spinefx.cli.morphometry_cmd",
    "spinefx.cli.prepare_cmd",
    "spinefx.cli.train_cmd",
    "spinefx.cli.train_localiser_cmd",
    "spinefx.cli.crossval_cmd",
    "spinefx.cli.evaluate_cmd",
    "spinefx.cli.predict_cmd",
    "spinefx.cli.localise_cmd",
    "spinefx.cli.detect_cmd",
    "spinefx.cli.dissect_cmd",
    "spinefx.cli.report_cmd",
    "spinefx.cli.app_cmd",
    "spinefx.cli.weights_cmd",
    "spinefx.cli.demo_cmd",
)

log = logging.getLogger("spinefx")
NO_CT_CHECK_HELP = (
    "accept scans that fail the 'looks like CT in HU' check (HU range, bone present); "
    "for the rare real CT it refuses"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spinefx",
        description="Vertebral fracture detection in CT with interpretable 3D CNNs.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--no-ct-check", action="store_true", help=NO_CT_CHECK_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # command not written yet in this checkout
                continue
            raise
        module.register(sub)
    for command in sub.choices.values():  # also accepted after the command name
        command.add_argument(
            "--no-ct-check", dest="no_ct_check_here", action="store_true", help=NO_CT_CHECK_HELP
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.no_progress:
        from spinefx.progress import set_progress

        set_progress(False)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if args.no_ct_check or getattr(args, "no_ct_check_here", False):
            from spinefx.io.scan import ct_check_disabled

            with ct_check_disabled():
                return int(args.func(args) or 0)
        return int(args.func(args) or 0)
    except SpinefxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C: one line, no traceback (130 = 128 + SIGINT)
        from spinefx.parallel import Interrupted

        if isinstance(exc, Interrupted):  # a batch of cases: how far it got
            print(exc.message, file=sys.stderr)
        else:
            print(
                "interrupted: finished work is kept (every file is written whole); run the "
                "same command again to resume",
                file=sys.stderr,
            )
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
