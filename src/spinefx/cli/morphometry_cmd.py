"""``spinefx morphometry``: vertebral body heights and Genant grade/shape from a mask."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "morphometry",
        help="body heights, ratios and Genant grade/shape per vertebra from a vertebra mask",
        description=(
            "Measure anterior/middle/posterior body heights along the spine axis in a VerSe "
            "vertebra mask and estimate each vertebra's Genant grade and shape."
        ),
    )
    p.add_argument(
        "mask",
        help="vertebra label mask: VerSe ids, a TotalSegmentator file (v1/v2 `total`, "
        "`vertebrae_body`) or a TotalSegmentator output folder",
    )
    p.add_argument(
        "--mask-numbering",
        choices=("auto", "verse", "totalseg_v1", "totalseg_v2"),
        default="auto",
        help="label numbering of the mask (default: detected from the anatomy)",
    )
    p.add_argument("--centroids", help="VerSe centroid JSON of the same scan (optional)")
    p.add_argument("--subregion-mask", help="VerSe sub-region mask (49-50 = body; optional)")
    p.add_argument("--json", dest="json_out", help="also write the table as JSON to this file")
    p.add_argument("--csv", dest="csv_out", help="also write the table as CSV to this file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from spinefx.atomic import write_text_atomic
    from spinefx.errors import InputError
    from spinefx.io import load_centroids, load_mask
    from spinefx.io.vertebra_masks import load_vertebra_mask
    from spinefx.morphometry import format_table, measure_vertebrae
    from spinefx.runs.shipped import provenance_columns

    mask = load_vertebra_mask(args.mask, numbering=args.mask_numbering).image
    centroids = load_centroids(args.centroids, mask) if args.centroids else None
    subregion = load_mask(args.subregion_mask, known_labels=None) if args.subregion_mask else None
    rows = measure_vertebrae(mask, centroids=centroids, subregion_mask=subregion)
    if not rows:
        raise InputError(
            "no vertebra of this mask could be measured",
            path=args.mask,
            fix="check that the mask holds whole vertebral bodies (thoracic or lumbar)",
        )
    print(format_table(rows))
    records = [
        {
            "level": r.level,
            "vertebra_label": r.vertebra_label,
            "heights_mm": [round(h, 2) for h in r.heights_mm],
            "wedge_ratio": round(r.wedge_ratio, 3),
            "biconcavity_ratio": round(r.biconcavity_ratio, 3),
            "crush_ratio": round(r.crush_ratio, 3),
            "height_loss": round(r.height_loss, 3),
            "genant_grade": r.genant_grade,
            "shape": r.shape,
            "note": r.note,
        }
        for r in rows
    ]
    source = provenance_columns(args.mask)
    if args.json_out:
        payload = {"mask": source["scan"], "spinefx_version": source["spinefx_version"]}
        write_text_atomic(args.json_out, json.dumps({**payload, "vertebrae": records}, indent=1))
    if args.csv_out:
        import pandas as pd

        flat = []
        for record in records:
            row = {k: v for k, v in record.items() if k != "heights_mm"}
            for name, height in zip(
                ("anterior", "middle", "posterior"), record["heights_mm"], strict=True
            ):
                row[f"{name}_height_mm"] = height
            flat.append(
                {**row, "mask": source["scan"], "spinefx_version": source["spinefx_version"]}
            )
        write_text_atomic(args.csv_out, pd.DataFrame(flat).to_csv(index=False))
    return 0
