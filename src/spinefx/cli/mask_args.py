"""``--mask`` / ``--mask-numbering``: vertebra masks as the source of vertebra positions.

Shared by ``predict``, ``detect`` and ``report``: a VerSe mask, a TotalSegmentator multilabel
file (v1 or v2 ``total`` ids, ``vertebrae_body`` / ``vertebrae_pp*`` tasks) or a
TotalSegmentator output folder of per-structure files; its body centroids locate the vertebrae.
"""

from __future__ import annotations

NUMBERING_CHOICES = ("auto", "verse", "totalseg_v1", "totalseg_v2")


def add_mask_arguments(parser) -> None:
    parser.add_argument(
        "--mask",
        help="vertebra mask instead of --centroids: VerSe ids, a TotalSegmentator file (v1/v2 "
        "`total`, `vertebrae_body`) or a TotalSegmentator output folder",
    )
    parser.add_argument(
        "--mask-numbering",
        choices=NUMBERING_CHOICES,
        default="auto",
        help="label numbering of --mask (default: detected from the anatomy)",
    )


def check_one_source(args) -> None:
    """Refuse ``--centroids`` together with ``--mask``."""
    from spinefx.errors import InputError

    if args.mask and args.centroids:
        raise InputError(
            "both --centroids and --mask given", fix="pass one source of vertebra positions"
        )


def centroids_from_arguments(args, scan):
    """Body centroids from ``--mask`` or the centroid JSON of ``--centroids`` (None: neither).

    Raises:
        InputError: both given, or a file that cannot belong to the scan.
    """
    check_one_source(args)
    if args.mask:
        from spinefx.morphometry.centroids import vertebra_mask_centroids

        return vertebra_mask_centroids(args.mask, scan, numbering=args.mask_numbering)
    if args.centroids:
        from spinefx.io import load_centroids

        return load_centroids(args.centroids, scan, outside="keep")
    return None
