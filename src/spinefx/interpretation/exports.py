"""Per-unit exports: collage and slice-strip PNGs, NIfTI volumes in world space, HTML index.

Only the samples that are shown are reloaded (from the dataset, by index); the unit's own
activation maps of its top samples are already kept by dissection. Nothing of size
``units x samples x image`` is ever built.

CT slices are shown in a bone window (``BONE_WINDOW_HU``) from HU values, not min-max
rescaled. A sagittal patch slice is a fixed x index, drawn in the display convention of every
spinefx figure (:mod:`spinefx.display`): cranial up, anterior on the left, edge letters, and the
slice's world x (RAS+ mm) in the tile's title.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

import numpy as np
import torch

from spinefx.atomic import atomic_path, write_text_atomic
from spinefx.conventions import AIR_HU, HU_CLIP
from spinefx.display import annotate_axes, display_slice, ras_ordered
from spinefx.image import Image
from spinefx.interpretation.grids import sample_onto_grid, upsample

log = logging.getLogger(__name__)

#: Display window for CT slices (level 300 HU, width 1500 HU).
BONE_WINDOW_HU = (-450.0, 1050.0)


def best_sagittal_slice(unit_map: np.ndarray, threshold: float) -> int:
    """x index where THIS unit's thresholded activation ``sum A (A > T)`` is largest.

    Falls back to the largest raw activation sum when the unit never exceeds its threshold.
    """
    above = np.where(unit_map > threshold, unit_map, 0.0).sum(axis=(1, 2))
    if above.max() > 0:
        return int(np.argmax(above))
    return int(np.argmax(unit_map.sum(axis=(1, 2))))


def sample_ct_hu(
    dataset, index: int, input_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """CT of a dataset sample on its input grid in HU, and that grid's affine ``(4, 4)``.

    Reads the patch NIfTI named by ``meta["path"]`` when present (exact HU); otherwise maps
    the model input (channel 0, ``hu_to_unit`` scaling) back to HU.
    """
    item = dataset[index]
    meta = item[2] if len(item) > 2 else {}
    affine = np.asarray(meta.get("affine", np.eye(4)), dtype=np.float64)
    path = meta.get("path")
    if path and Path(path).is_file():
        from spinefx.io import read_nifti

        patch = read_nifti(path)
        data = np.asarray(patch.data, dtype=np.float32)
        ct = sample_onto_grid(data, patch.affine, affine, input_shape, order=1, fill_value=AIR_HU)
        return ct.astype(np.float32), affine
    x = torch.as_tensor(item[0]).float().numpy()[0]
    low, high = HU_CLIP
    return (x * (high - low) + low).astype(np.float32), affine


def _draw_tile(ax, ct: Image, act: Image, index: int, threshold: float, title: str):
    """One sagittal tile in the display convention: anterior left, letters, world x in the title.

    ``ct`` and ``act`` share the input grid (RAS voxel order, :func:`_ras_pair`); ``index`` is
    the sagittal slice.
    """
    view = display_slice(ct, plane="sagittal", index=index)
    heat = display_slice(act, plane="sagittal", index=index).pixels
    ax.imshow(
        view.pixels,
        cmap="gray",
        vmin=BONE_WINDOW_HU[0],
        vmax=BONE_WINDOW_HU[1],
        interpolation="nearest",
        **view.imshow_kwargs(),
    )
    if heat.max() > threshold:
        # pad below the threshold so regions touching the patch border are outlined too; the
        # padded grid's extent grows by one pixel on every side
        padded = np.pad(heat, 1, constant_values=min(heat.min(), threshold) - 1.0)
        width, height = view.pixel_size_mm
        left, right, bottom, top = view.extent_mm
        ax.contour(
            padded,
            levels=[threshold],
            colors="yellow",
            linewidths=1.0,
            origin="upper",
            extent=(left + width, right - width, bottom - height, top + height),
        )
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
    annotate_axes(ax, view, ticks=False, fontsize=5)
    ax.set_title(f"{title} {view.position_label}".strip(), fontsize=6)


def _ras_pair(ct: np.ndarray, act: np.ndarray, affine: np.ndarray) -> tuple[Image, Image]:
    """CT and activation on the input grid, in RAS voxel order (identity for spine patches)."""
    return ras_ordered(Image(ct, affine)), ras_ordered(Image(act, affine))


def _save_figure(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def export_collage(dissection, dataset, unit: int, path: Path, *, n: int = 25, per_row: int = 5):
    """Grid of the unit's top ``n`` fractured samples, each at its best sagittal slice."""
    from matplotlib.figure import Figure

    top, thr = dissection.top_positive, float(dissection.thresholds[unit])
    slots = [s for s in range(min(n, top.indices.shape[1])) if int(top.indices[unit, s]) >= 0]
    if not slots:
        return None
    per_row = min(per_row, len(slots))
    rows = int(np.ceil(len(slots) / per_row))
    fig = Figure(figsize=(2 * per_row, 2.2 * rows))
    for j, slot in enumerate(slots):
        idx = int(top.indices[unit, slot])
        act = upsample(top.maps[unit, slot], dissection.input_shape).numpy()
        ct, affine = sample_ct_hu(dataset, idx, dissection.input_shape)
        ct_image, act_image = _ras_pair(ct, act, affine)
        x = best_sagittal_slice(act_image.data, thr)
        meta = dissection.metas[idx]
        title = f"{meta.get('case_id', idx)} {meta.get('level', '')}"
        _draw_tile(fig.add_subplot(rows, per_row, j + 1), ct_image, act_image, x, thr, title)
    fig.suptitle(f"unit {unit}: top fractured samples (yellow: A > T = {thr:.3g})", fontsize=9)
    return _save_figure(fig, path)


def export_top_samples(dissection, dataset, unit: int, folder: Path, *, n: int = 5) -> dict:
    """Strip PNG (one column per activation slice) and NIfTI triples of the top ``n`` samples.

    NIfTI files (input grid, affine = input grid -> world RAS+ mm, so they overlay on the
    original scan): ``*_ct.nii.gz`` int16 HU, ``*_act.nii.gz`` float32 activation upsampled
    trilinearly, ``*_mask.nii.gz`` uint8 ``A > T``.
    """
    from matplotlib.figure import Figure

    top, thr = dissection.top_positive, float(dissection.thresholds[unit])
    slots = [s for s in range(min(n, top.indices.shape[1])) if int(top.indices[unit, s]) >= 0]
    if not slots:
        return {}
    act_x = dissection.activation_shape[0]
    stride = dissection.input_shape[0] / act_x
    xs = [int(round((i + 0.5) * stride - 0.5)) for i in range(act_x)]
    fig = Figure(figsize=(1.6 * len(xs), 1.7 * len(slots)))
    nifti = []
    for r, slot in enumerate(slots):
        idx = int(top.indices[unit, slot])
        act = upsample(top.maps[unit, slot], dissection.input_shape).numpy()
        ct, affine = sample_ct_hu(dataset, idx, dissection.input_shape)
        ct_image, act_image = _ras_pair(ct, act, affine)
        meta = dissection.metas[idx]
        for c, x in enumerate(xs):
            title = f"{meta.get('case_id', idx)} {meta.get('level', '')}" if c == 0 else ""
            ax = fig.add_subplot(len(slots), len(xs), r * len(xs) + c + 1)
            _draw_tile(ax, ct_image, act_image, x, thr, title)
        stem = f"top{r + 1}_{_safe(meta.get('case_id', idx))}_{_safe(meta.get('level', ''))}"
        nifti.append(_write_triple(folder, stem, ct, act, thr, affine))
    strip = _save_figure(fig, folder / "strip.png")
    return {"strip": strip, "nifti": nifti}


def _safe(value) -> str:
    return "".join(ch if ch.isalnum() or ch in "-" else "-" for ch in str(value))


def _write_triple(folder: Path, stem: str, ct, act, threshold: float, affine) -> list[Path]:
    volumes = {
        "ct": np.clip(np.round(ct), -32768, 32767).astype(np.int16),
        "act": act.astype(np.float32),
        "mask": (act > threshold).astype(np.uint8),
    }
    paths = []
    for kind, data in volumes.items():
        path = folder / f"{stem}_{kind}.nii.gz"
        save_nifti(data, affine, path)
        paths.append(path)
    return paths


def save_nifti(data: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    """Atomic NIfTI write through ``spinefx.io.save_image`` (qform = sform = ``affine``)."""
    from spinefx.io import save_image

    return save_image(Image(data, affine), path)


def write_index_html(atlas: dict, out_dir: Path, *, rank_by: str = "tp") -> Path:
    """Static ``index.html``: one row per unit by correlation rank, with collage thumbnails."""
    units = sorted(atlas["units"], key=lambda u: u["rank"].get(rank_by, 0))
    rows = []
    for u in units:
        corr, rank = u["correlation"], u["rank"]
        scores = sorted(u.get("concept_scores", {}).items(), key=lambda kv: -kv[1])[:3]
        concept = ", ".join(f"{html.escape(k)} {v:.2f}" for k, v in scores)
        collage = u.get("exports", {}).get("collage")
        thumb = (
            f'<a href="{html.escape(collage)}"><img src="{html.escape(collage)}" width="160"></a>'
            if collage
            else ""
        )
        fmt = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
        rows.append(
            f"<tr><td>{u['unit']}</td><td>{rank.get('tp', '')}</td><td>{rank.get('fp', '')}</td>"
            f"<td>{rank.get('tn', '')}</td><td>{fmt(corr.get('tp'))}</td>"
            f"<td>{fmt(corr.get('fp'))}</td><td>{fmt(corr.get('tn'))}</td>"
            f"<td>{u['threshold']:.4g}</td><td>{concept}</td>"
            f"<td>{html.escape(u.get('concept_label') or '')}</td><td>{thumb}</td></tr>"
        )
    groups = atlas.get("groups", {})
    text = f"""<!doctype html><html><head><meta charset="utf-8">
<title>spinefx dissection: {html.escape(str(atlas.get("layer")))}</title>
<style>body{{font-family:sans-serif}} td,th{{border:1px solid #ccc;padding:2px 6px;
font-size:12px}} table{{border-collapse:collapse}}</style></head><body>
<h1>Network dissection of layer <code>{html.escape(str(atlas.get("layer")))}</code></h1>
<p>q = {atlas.get("quantile")} (unit enabled where A &gt; T, P(a &gt; T) = q);
samples: {atlas.get("n_samples")} (TP {groups.get("tp")}, FP {groups.get("fp")},
TN {groups.get("tn")}, FN {groups.get("fn")}). c = fraction of the set in which the unit is
enabled; rank 1 = highest.</p>
<table><tr><th>unit</th><th>rank TP</th><th>rank FP</th><th>rank TN</th><th>c TP</th>
<th>c FP</th><th>c TN</th><th>T</th><th>concept IoU (top 3)</th><th>expert label</th>
<th>collage</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    path = Path(out_dir) / "index.html"
    write_text_atomic(path, text)
    return path
