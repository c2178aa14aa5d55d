"""``spinefx localise``: find and label the vertebrae of a CT (centroid JSON + label map)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "localise",
        help="find the vertebral bodies of a CT and label their levels (no model needed)",
        description=(
            "Find the vertebral bodies on the CT's anatomy (bone, bodies, discs) and label "
            "their levels, counted from the sacrum when it is in view and otherwise marked "
            "uncertain. Writes a VerSe centroid JSON, a VerSe-id label map (an approximate "
            "map for checking the levels in a viewer, not a segmentation) and a JSON summary "
            "with every level's confidence."
        ),
    )
    p.add_argument("scan", help="CT: NIfTI file or DICOM series folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--localiser",
        choices=("anatomy", "heatmap"),
        default="anatomy",
        help="'anatomy' (bone, bodies and discs; default) or 'heatmap' (the bodies from the "
        "body-centre heatmap network, the sacrum and levels from the anatomy)",
    )
    p.add_argument(
        "--heatmap-weights",
        help="body_heatmap.pt of `spinefx train-localiser` (default: the shipped weights)",
    )
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="exit 0 when no vertebra is found (default: an error, exit 1)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from spinefx import __version__
    from spinefx.atomic import write_text_atomic
    from spinefx.conventions import level_name
    from spinefx.errors import InputError
    from spinefx.inference.ct_localisation import localise_spine, vertebra_label_map
    from spinefx.inference.localisation import check_localisation
    from spinefx.io import load_scan, save_centroids, save_image

    body_net = None
    if args.localiser == "heatmap":
        from spinefx.models.body_heatmap import load_heatmap_net
        from spinefx.runs.shipped import shipped_heatmap_weights

        body_net = load_heatmap_net(args.heatmap_weights or shipped_heatmap_weights())
    scan = load_scan(args.scan)
    loc = localise_spine(scan, body_net=body_net)
    if not loc.vertebrae and not args.allow_empty:
        raise InputError(
            "no vertebra found in this scan" + (f" ({'; '.join(loc.notes)})" if loc.notes else ""),
            path=args.scan,
            fix="check that the scan shows the spine, or pass --allow-empty",
        )
    if loc.vertebrae:
        check_localisation(loc.centroids)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.scan).name.split(".")[0] or "scan"
    ctd = save_centroids(loc.centroids, out / f"{stem}_ctd.json", scan)
    labels = save_image(vertebra_label_map(scan, loc), out / f"{stem}_vert_msk.nii.gz")
    summary = {
        "scan": str(args.scan),
        "spinefx_version": __version__,
        "localiser": loc.source,  # "anatomy" also where the heatmap found no spine
        "anchor": loc.anchor,
        "levels_certain": loc.levels_certain,
        "pitch_mm": None if loc.pitch_mm != loc.pitch_mm else round(loc.pitch_mm, 1),
        "notes": loc.notes,
        "vertebrae": [
            {
                "label": v.label,
                "level": level_name(v.label),
                "centroid_mm": [round(float(c), 2) for c in v.centroid_mm],
                "level_confidence": v.level_confidence,
                "level_note": v.level_note,
                "cut_by_border": v.cut_by_border,
                "found_by": "heatmap" if loc.source == "heatmap" and not v.from_bone else "bone",
            }
            for v in loc.vertebrae
        ],
    }
    write_text_atomic(out / "localisation.json", json.dumps(summary, indent=2) + "\n")
    for v in loc.vertebrae:
        print(f"{level_name(v.label):>4s}  {v.level_confidence:9s}  "
              + " ".join(f"{c:7.1f}" for c in v.centroid_mm))  # fmt: skip
    print(f"levels: {loc.anchor} ({'anchored' if loc.levels_certain else 'uncertain'})")
    print(f"wrote {ctd}, {labels} and {out / 'localisation.json'}")
    return 0
