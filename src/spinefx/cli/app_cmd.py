"""``spinefx app``: the concept visualisation web app (local server)."""

from __future__ import annotations

import argparse
from pathlib import Path

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "app",
        help="web app: per-vertebra predictions, concept panels and draft reports",
        description="Start the concept visualisation web app for a trained patch-classifier run. "
        "It binds to 127.0.0.1 unless --host says otherwise.",
    )
    p.add_argument(
        "run_dir",
        type=Path,
        nargs="?",
        metavar="RUN_DIR",
        help="patch classifier run directory (default: the shipped weights)",
    )
    p.add_argument("--atlas", type=Path, help="concept atlas file (default: the run's own)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    # localisation no longer needs a voxel model (it runs on the CT's anatomy): the old flag
    # is accepted and ignored with a note
    p.add_argument("--voxel-model", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--max-upload-mb", type=float, default=512.0, help="upload limit (MB)")
    p.add_argument(
        "--max-image-gb",
        type=float,
        default=1.0,
        help="largest voxel array an uploaded scan may declare, checked on its header (GB)",
    )
    p.add_argument(
        "--max-concurrent",
        type=int,
        default=2,
        help="scans analysed at once; further uploads are answered 'busy' (429)",
    )
    p.add_argument("--cache-dir", type=Path, help="folder for the bundled synthetic examples")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from spinefx.app import create_app
    from spinefx.errors import InputError
    from spinefx.reporting import load_model_run
    from spinefx.runs.shipped import resolve_run

    log = logging.getLogger("spinefx.app")
    if args.max_concurrent < 1 or not args.max_image_gb > 0 or not args.max_upload_mb > 0:
        raise InputError(
            "invalid app limits",
            fix="use --max-concurrent >= 1 and positive --max-upload-mb and --max-image-gb",
        )
    if args.voxel_model:
        log.warning("--voxel-model is not needed any more (localisation runs on the CT)")
    model_run = load_model_run(resolve_run(args.run_dir, "patch"), atlas_path=args.atlas)
    local = args.host in LOCAL_HOSTS
    app = create_app(
        model_run,
        max_upload_mb=args.max_upload_mb,
        cache_dir=args.cache_dir,
        allowed_hosts=[*LOCAL_HOSTS, "[::1]"] if local else None,
        max_concurrent=args.max_concurrent,
        max_image_gb=args.max_image_gb,
    )
    if not local:
        log.warning("binding to %s: the app has no authentication", args.host)
    log.info("spinefx app on http://%s:%d", args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
