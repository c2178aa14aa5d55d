"""Anatomical concept regions in the patch frame, and IoU of unit masks with them.

Concept regions come from VerSe-style masks resampled onto the input (patch) grid with
nearest-neighbour sampling:

* ``vertebral_body``: sub-region labels 49 (corpus border) and 50 (corpus) of this vertebra.
* ``posterior_elements``: sub-region labels 41-48 (arch, spinous, costal and articular
  processes) of this vertebra.
* ``superior_endplate`` / ``inferior_endplate``: the cranial / caudal ``endplate_band_mm`` of
  the vertebral body in each column along the patch z axis (patch z runs caudal -> cranial
  along the spine, so a column is perpendicular to the endplates).
* ``intervertebral_disc``: sub-region label 100 where present; otherwise the non-vertebra
  voxels above and below this body's footprint up to the next vertebra (at most
  ``disc_max_mm``).
* ``adjacent_vertebra``: voxels of any other vertebra label.
* ``fracture_zone``: ground-truth fracture zone of the synthetic generator (``_seg-fxzone_msk``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from spinefx.interpretation.grids import sample_onto_grid

log = logging.getLogger(__name__)

CONCEPTS = (
    "vertebral_body",
    "superior_endplate",
    "inferior_endplate",
    "posterior_elements",
    "intervertebral_disc",
    "adjacent_vertebra",
    "fracture_zone",
)
#: VerSe sub-region labels.
BODY_LABELS = (49, 50)
POSTERIOR_LABELS = tuple(range(41, 49))
DISC_LABEL = 100


def concept_regions(
    *,
    vertebra_mask: np.ndarray | None,
    subregion_mask: np.ndarray | None,
    fracture_zone: np.ndarray | None,
    vertebra_label: int,
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0),
    endplate_band_mm: float = 3.0,
    disc_max_mm: float = 15.0,
) -> dict[str, np.ndarray]:
    """Bool concept masks on the patch grid from masks already sampled onto that grid.

    Args:
        vertebra_mask: int ``(X, Y, Z)`` vertebra labels (VerSe ids) or None.
        subregion_mask: int ``(X, Y, Z)`` VerSe sub-region labels or None.
        fracture_zone: int ``(X, Y, Z)`` ground-truth fracture zone (>0 inside) or None.
        vertebra_label: VerSe id of the vertebra the patch is centred on.
        spacing_mm: voxel size of the patch grid along x, y, z.

    Returns:
        Only the concepts the given masks define, each bool ``(X, Y, Z)``.
    """
    out: dict[str, np.ndarray] = {}
    own = None if vertebra_mask is None else vertebra_mask == vertebra_label
    if vertebra_mask is not None:
        out["adjacent_vertebra"] = (vertebra_mask > 0) & ~own
    if subregion_mask is not None:
        body = np.isin(subregion_mask, BODY_LABELS)
        posterior = np.isin(subregion_mask, POSTERIOR_LABELS)
        if own is not None:
            body, posterior = body & own, posterior & own
        out["vertebral_body"] = body
        out["posterior_elements"] = posterior
        band = max(1, int(round(endplate_band_mm / spacing_mm[2])))
        out["superior_endplate"] = _column_band(body, band, top=True)
        out["inferior_endplate"] = _column_band(body, band, top=False)
        if np.any(subregion_mask == DISC_LABEL):
            out["intervertebral_disc"] = subregion_mask == DISC_LABEL
        elif vertebra_mask is not None:
            gap = max(1, int(round(disc_max_mm / spacing_mm[2])))
            out["intervertebral_disc"] = _disc_between(body, vertebra_mask > 0, gap)
    if fracture_zone is not None:
        zone = fracture_zone == vertebra_label
        out["fracture_zone"] = zone if zone.any() else fracture_zone > 0
    return out


def _column_band(body: np.ndarray, band: int, *, top: bool) -> np.ndarray:
    """Body voxels within ``band`` voxels of the column's top (max z) or bottom (min z)."""
    z = np.arange(body.shape[2])[None, None, :]
    has = body.any(axis=2, keepdims=True)
    if top:
        edge = np.where(body, z, -1).max(axis=2, keepdims=True)
        return body & has & (z > edge - band)
    edge = np.where(body, z, body.shape[2]).min(axis=2, keepdims=True)
    return body & has & (z < edge + band)


def _disc_between(body: np.ndarray, bone: np.ndarray, gap: int) -> np.ndarray:
    """Non-bone voxels of body columns between the body and the next bone within ``gap``."""
    out = np.zeros_like(body)
    z = np.arange(body.shape[2])
    for i, j in zip(*np.nonzero(body.any(axis=2)), strict=True):
        col_body, col_bone = body[i, j], bone[i, j]
        top, bottom = z[col_body].max(), z[col_body].min()
        for start, step in ((top + 1, 1), (bottom - 1, -1)):
            run = []
            k = start
            while 0 <= k < len(z) and len(run) < gap and not col_bone[k]:
                run.append(k)
                k += step
            if run and 0 <= k < len(z) and col_bone[k]:  # closed by the next vertebra
                out[i, j, run] = True
    return out


def case_mask_paths(scan_path: str | Path) -> dict[str, Path]:
    """VerSe-layout derivative masks of a scan that exist on disk (vert, subreg, fxzone).

    ``rawdata/sub-X/sub-X_ct.nii.gz`` -> ``derivatives/sub-X/sub-X_seg-<kind>_msk.nii.gz``.
    """
    scan_path = Path(scan_path)
    name = scan_path.name
    for suffix in ("_ct.nii.gz", "_ct.nii"):
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            break
    else:
        return {}
    parts = list(scan_path.parent.parts)
    folders = [scan_path.parent]
    if "rawdata" in parts:
        idx = len(parts) - 1 - parts[::-1].index("rawdata")
        folders.insert(0, Path(*parts[:idx], "derivatives", *parts[idx + 1 :]))
    found = {}
    for kind in ("vert", "subreg", "fxzone"):
        for folder in folders:
            for ext in (".nii.gz", ".nii"):
                path = folder / f"{stem}_seg-{kind}_msk{ext}"
                if path.is_file() and kind not in found:
                    found[kind] = path
    return found


def concepts_for_sample(
    meta: dict, input_shape: tuple[int, int, int], *, cache: dict | None = None, **options
) -> dict[str, np.ndarray]:
    """Concept regions of one dissected sample on its input grid ({} when no masks exist).

    Uses ``meta["scan_path"]`` to find the case's masks, ``meta["affine"]`` for the input grid
    and ``meta["vertebra_label"]``. ``cache`` (scan path -> loaded masks) avoids reloading a
    case for each of its vertebrae.
    """
    scan_path, affine = meta.get("scan_path"), meta.get("affine")
    if not scan_path or affine is None or meta.get("vertebra_label") is None:
        return {}
    cache = {} if cache is None else cache
    if scan_path not in cache:
        cache.clear()  # one case at a time keeps memory bounded
        cache[scan_path] = _load_masks(case_mask_paths(scan_path))
    masks = cache[scan_path]
    if not masks:
        return {}
    affine = np.asarray(affine, dtype=np.float64)
    sampled = {
        kind: sample_onto_grid(data, mask_affine, affine, input_shape, order=0)
        for kind, (data, mask_affine) in masks.items()
    }
    spacing = tuple(float(s) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    return concept_regions(
        vertebra_mask=sampled.get("vert"),
        subregion_mask=sampled.get("subreg"),
        fracture_zone=sampled.get("fxzone"),
        vertebra_label=int(meta["vertebra_label"]),
        spacing_mm=spacing,
        **options,
    )


def _load_masks(paths: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Masks of one case as (labels, affine); a case whose masks cannot be read gets none."""
    from spinefx.errors import InputError
    from spinefx.io import load_mask

    out = {}
    for kind, path in paths.items():
        try:
            image = load_mask(path, known_labels=None)
        except InputError as exc:
            log.warning("concept masks skipped: %s", exc)
            return {}
        out[kind] = (np.asarray(image.data).astype(np.int32), image.affine)
    return out


def iou_accumulate(mask: np.ndarray, region: np.ndarray) -> tuple[int, int]:
    """Intersection and union voxel counts of two bool masks of the same grid."""
    return int(np.count_nonzero(mask & region)), int(np.count_nonzero(mask | region))


def unit_concept_ious(
    dissection,
    *,
    samples_per_unit: int = 10,
    concept_fn=concepts_for_sample,
    units=None,
    mask_upsampling: str = "nearest",
) -> dict[int, dict[str, float]]:
    """IoU of each unit's upsampled masks with each concept over its top fractured samples.

    ``IoU_{k,c} = sum_x |M_k(x) & C(x)| / sum_x |M_k(x) | C(x)|`` over the unit's
    ``samples_per_unit`` top-scoring ground-truth-positive samples (network dissection's
    dataset-level IoU, restricted to where the unit fires most). Samples are visited one at a
    time, so only one sample's concept masks are in memory. ``mask_upsampling`` "nearest"
    (default) scores the cells' footprints, "trilinear" the paper's upsampled masks, which are
    empty for units that exceed T only slightly (see :func:`~spinefx.interpretation.grids.
    upsample_mask`).

    Returns:
        unit -> concept -> IoU (concepts without any mask in those samples are omitted).
    """
    from spinefx.interpretation.grids import upsample_mask

    top = dissection.top_positive
    units = range(dissection.n_units) if units is None else units
    by_sample: dict[int, list[tuple[int, int]]] = {}
    for k in units:
        for slot in range(min(samples_per_unit, top.indices.shape[1])):
            idx = int(top.indices[k, slot])
            if idx >= 0:
                by_sample.setdefault(idx, []).append((k, slot))
    inter: dict[tuple[int, str], int] = {}
    union: dict[tuple[int, str], int] = {}
    cache: dict = {}
    order = sorted(by_sample, key=lambda i: str(dissection.metas[i].get("scan_path", "")))
    for idx in order:
        regions = concept_fn(dissection.metas[idx], dissection.input_shape, cache=cache)
        if not regions:
            continue
        for k, slot in by_sample[idx]:
            mask = upsample_mask(
                top.maps[k, slot],
                float(dissection.thresholds[k]),
                dissection.input_shape,
                mode=mask_upsampling,
            )
            for name, region in regions.items():
                i, u = iou_accumulate(mask, region)
                inter[(k, name)] = inter.get((k, name), 0) + i
                union[(k, name)] = union.get((k, name), 0) + u
    out: dict[int, dict[str, float]] = {int(k): {} for k in units}
    for (k, name), u in union.items():
        out[k][name] = inter[(k, name)] / u if u else 0.0
    return out


def compare_top_vs_random(scores: np.ndarray, ranks: np.ndarray, *, top: int, rng, n_draws: int):
    """Mean score of the ``top`` best-ranked units vs random ``top``-unit sets (a permutation
    p-value and a bootstrap interval of the difference)."""
    chosen = np.argsort(ranks)[:top]
    observed = float(scores[chosen].mean())
    draws = np.array(
        [scores[rng.choice(len(scores), top, replace=False)].mean() for _ in range(n_draws)]
    )
    boot_top = np.array([scores[rng.choice(chosen, top)].mean() for _ in range(n_draws)])
    boot_all = np.array([scores[rng.choice(len(scores), top)].mean() for _ in range(n_draws)])
    diff = boot_top - boot_all
    return {
        "top_units": [int(k) for k in chosen],
        "top_mean_iou": observed,
        "random_mean_iou": float(draws.mean()),
        "all_units_mean_iou": float(scores.mean()),
        "permutation_p_value": float((1 + np.sum(draws >= observed)) / (1 + n_draws)),
        "difference_bootstrap_95ci": [
            float(np.quantile(diff, 0.025)),
            float(np.quantile(diff, 0.975)),
        ],
    }
