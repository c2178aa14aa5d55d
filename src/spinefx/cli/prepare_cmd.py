"""``spinefx prepare DATASET --out DIR``: spine-aligned vertebra patches and a manifest."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="extract one spine-aligned patch per vertebra and write a manifest",
        description="Load a dataset (VerSe layout, BIDS-like with labels.tsv, or a manifest "
        "CSV), extract a patch centred on every vertebral body in its spine-aligned frame, and "
        "write OUT/patches/<case>/<LEVEL>.nii, OUT/manifest.csv and OUT/errors.csv. A re-run "
        "resumes where it stopped.",
    )
    parser.add_argument("dataset", help="dataset folder or manifest .csv")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--size-vox", type=int, default=96, help="patch edge in voxels (96)")
    parser.add_argument("--spacing-mm", type=float, default=1.0, help="patch voxel size (1.0)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (1)")
    parser.add_argument(
        "--include-cervical", action="store_true", help="also extract C1-C7 (off by default)"
    )
    parser.add_argument("--grades", help="grade table (VerSe appendix .xlsx or long .csv)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a folder prepared with other settings"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spinefx.io import scan_dataset
    from spinefx.preprocessing import prepare_dataset

    loaded = scan_dataset(args.dataset, grades=args.grades)
    cases = loaded.cases
    result = prepare_dataset(
        cases,
        args.out,
        size_vox=args.size_vox,
        spacing_mm=args.spacing_mm,
        workers=args.workers,
        include_cervical=args.include_cervical,
        overwrite=args.overwrite,
        skipped=loaded.problems,
    )
    print(format_summary(result))
    return 0 if result.n_cases_ok > 0 or not cases else 1


def format_summary(result) -> str:
    """A short text summary of a :class:`spinefx.preprocessing.PrepareResult`."""
    grades = result.fractured_by_grade
    by_grade = ", ".join(f"grade {g or 'none'}: {n}" for g, n in grades.items()) or "-"
    fractured = sum(1 for r in result.manifest if str(r["fractured"]) == "1")
    lines = [
        f"cases: {result.n_cases_ok} ok ({result.n_resumed} already done), "
        f"{len(result.errors)} failed",
        f"vertebrae: {len(result.manifest)} patches, {fractured} fractured ({by_grade})",
        f"mean out-of-view fraction: {result.mean_out_of_view_fraction:.3f}",
        f"manifest: {result.manifest_path}",
    ]
    if result.errors:
        lines.append(f"errors: {result.errors_path}")
    return "\n".join(lines)
