"""Segment extraction and class-weighted sampling for the dual-pathway voxel classifier.

Pure numpy functions shared by training and inference. Volumes are ``(X, Y, Z)`` arrays of
the 1 mm RAS resampled, z-scored scan; positions are voxel indices of that array.

Padding follows DeepMedic (``get_subsampl_segment``, ``calc_border_int_of_3d_img``): parts of a
segment outside the image are filled with the image's *border intensity* (mean of its six
faces), for the high-res and the strided low-res segment alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinefx.datasets.voxel_labels import IGNORE_LABEL
from spinefx.image import Image


def border_intensity(volume: np.ndarray) -> float:
    """Mean intensity of the six faces of ``volume`` (DeepMedic's padding value)."""
    faces = [
        volume[0],
        volume[-1],
        volume[:, 0],
        volume[:, -1],
        volume[:, :, 0],
        volume[:, :, -1],
    ]
    return float(np.mean([f.mean() for f in faces]))


def extract_segment(
    volume: np.ndarray,
    start_vox,
    *,
    size_vox,
    step_vox: int = 1,
    pad_value: float = 0.0,
) -> np.ndarray:
    """Sample ``volume[start + step * q]`` for ``q`` in ``[0, size)`` per axis, padding outside.

    Args:
        volume: ``(X, Y, Z)`` array.
        start_vox: integer voxel index ``(3,)`` of sample ``q = 0`` (may be outside the volume).
        size_vox: output shape ``(3,)``.
        step_vox: stride between samples (1 = contiguous, 3 = DeepMedic low-res pathway).
        pad_value: value for samples outside the volume.

    Returns:
        array of shape ``size_vox`` and dtype of ``volume``.
    """
    out = np.full(tuple(int(s) for s in size_vox), pad_value, dtype=volume.dtype)
    src, dst = [], []
    for axis in range(3):
        idx = int(start_vox[axis]) + step_vox * np.arange(int(size_vox[axis]))
        valid = (idx >= 0) & (idx < volume.shape[axis])
        if not valid.any():
            return out
        q = np.nonzero(valid)[0]
        src.append(slice(int(idx[q[0]]), int(idx[q[-1]]) + 1, step_vox))
        dst.append(slice(int(q[0]), int(q[-1]) + 1))
    out[tuple(dst)] = volume[tuple(src)]
    return out


def segment_pair(
    volume: np.ndarray,
    output_start_vox,
    geometry,
    *,
    pad_value: float,
) -> tuple[np.ndarray, np.ndarray]:
    """High-res and low-res input segments that predict the output block at ``output_start_vox``.

    Args:
        volume: ``(X, Y, Z)`` normalised scan.
        output_start_vox: voxel index of the first *output* voxel of the block.
        geometry: a ``SegmentGeometry`` (``spinefx.models.voxel_classifier.segment_geometry``);
            passed in, not imported, because datasets come before models in the pipeline.
        pad_value: padding for samples outside the volume (use :func:`border_intensity`).

    Returns:
        ``(high, low)`` of shapes ``geometry.input_vox`` and ``geometry.lowres_input_vox``.
    """
    half = [(i - o) // 2 for i, o in zip(geometry.input_vox, geometry.output_vox, strict=True)]
    start = np.asarray(output_start_vox, dtype=int) - np.asarray(half)
    high = extract_segment(volume, start, size_vox=geometry.input_vox, pad_value=pad_value)
    low = extract_segment(
        volume,
        start + np.asarray(geometry.lowres_offset_vox),
        size_vox=geometry.lowres_input_vox,
        step_vox=geometry.factor,
        pad_value=pad_value,
    )
    return high, low


def sample_centres(
    labels: np.ndarray,
    *,
    n: int,
    rng: np.random.Generator,
    class_proportions=(1 / 3, 1 / 3, 1 / 3),
) -> np.ndarray:
    """Centres of training segments, drawn with per-class proportions (DeepMedic sampling type 3).

    Each class ``c`` gets ``round(n * p_c)`` centres drawn uniformly among its voxels; the
    shares of classes absent from this scan go to the present ones (proportionally). Ignored
    voxels (255) are never centres.

    Returns:
        ``(n, 3)`` integer voxel indices.
    """
    props = np.asarray(class_proportions, dtype=float)
    present = np.array([np.any(labels == c) for c in range(len(props))])
    if not present.any():
        present[:] = False
        flat = np.flatnonzero(labels != IGNORE_LABEL)
        pick = rng.choice(flat, size=n) if flat.size else np.zeros(n, dtype=int)
        return np.stack(np.unravel_index(pick, labels.shape), axis=1)
    props = np.where(present, props, 0.0)
    props = props / props.sum()
    counts = rng.multinomial(n, props)
    class_voxels = {c: np.flatnonzero(labels == c) for c, k in enumerate(counts) if k}
    return sample_centres_by_class(class_voxels, counts, labels.shape, rng=rng)


def sample_centres_by_class(class_voxels, counts, shape, *, rng: np.random.Generator) -> np.ndarray:
    """``counts[c]`` centres drawn uniformly among the voxels of class ``c``.

    Args:
        class_voxels: class -> flat indices of its voxels in an array of ``shape`` (a
            precomputed cache for scans sampled many times).
        counts: centres per class.
        shape: shape of the label array.
        rng: random generator.

    Raises:
        ValueError: when a class with a non-zero count has no voxel.
    """
    picks = []
    for c, k in enumerate(counts):
        if k:
            flat = class_voxels.get(c, ())
            if not len(flat):
                raise ValueError(f"class {c} has no voxel to centre {k} segments on")
            picks.append(rng.choice(flat, size=int(k)))
    if not picks:
        return np.zeros((0, 3), dtype=int)
    return np.stack(np.unravel_index(np.concatenate(picks), shape), axis=1)


@dataclass(frozen=True)
class AugmentationParams:
    """Random draws for one segment: flips per axis, intensity shift and noise std (z units)."""

    flips: tuple[bool, bool, bool]
    shift: float
    scale: float
    noise_std: float
    noise_seed: int


def draw_augmentation(
    rng: np.random.Generator,
    *,
    flip_probability: float = 0.5,
    shift_std: float = 0.1,
    scale_std: float = 0.05,
    noise_std: float = 0.05,
) -> AugmentationParams:
    """Draw augmentation parameters (the TorchIO ``get_params`` half)."""
    return AugmentationParams(
        flips=tuple(bool(f) for f in rng.random(3) < flip_probability),  # type: ignore[arg-type]
        shift=float(rng.normal(0, shift_std)),
        scale=float(1 + rng.normal(0, scale_std)),
        noise_std=float(noise_std),
        noise_seed=int(rng.integers(2**31)),
    )


def apply_augmentation(arrays: list[np.ndarray], params: AugmentationParams, *, intensity_mask):
    """Flip every array of a (high, low, label) tuple alike; shift/scale/noise the intensity ones.

    Flipping the low-res segment together with the high-res one keeps them aligned because
    both are centred on the same point (the geometry is symmetric around the output block).

    Args:
        arrays: arrays of the same spatial layout (high-res, low-res, target labels).
        params: from :func:`draw_augmentation`.
        intensity_mask: per array, whether it holds intensities (True) or labels (False).
    """
    rng = np.random.default_rng(params.noise_seed)
    out = []
    for arr, is_intensity in zip(arrays, intensity_mask, strict=True):
        axes = tuple(a for a in range(3) if params.flips[a])
        if axes:
            arr = np.flip(arr, axis=axes)
        if is_intensity:
            arr = arr * params.scale + params.shift
            if params.noise_std > 0:
                arr = arr + rng.normal(0, params.noise_std, arr.shape).astype(arr.dtype)
        out.append(np.ascontiguousarray(arr))
    return out


@dataclass(frozen=True)
class NetworkView:
    """The voxel classifier's input image and the intensity transform that made it.

    The transform travels typed beside the image (not in ``Image.meta``, which is free-form
    provenance): ``value = (HU - hu_mean) / hu_std`` forward, :meth:`to_hu` back.

    Attributes:
        image: float32 RAS isotropic ``Image`` of normalised values.
        hu_mean / hu_std: the transform's offset and scale (HU).
    """

    image: Image
    hu_mean: float
    hu_std: float

    def to_network(self, hu):
        """HU (scalar or array) -> network values."""
        return (np.asarray(hu, dtype=np.float64) - self.hu_mean) / max(self.hu_std, 1e-6)

    def to_hu(self, values):
        """Network values -> HU (inside the clip window of the ``ct`` normalisation)."""
        return np.asarray(values, dtype=np.float64) * self.hu_std + self.hu_mean

    def hu_image(self) -> Image:
        """The view in HU, on the same grid."""
        return self.image.with_data(self.to_hu(self.image.data).astype(np.float32), kind="hu")


def prepare_voxel_input(
    scan, *, spacing_mm: float = 1.0, normalisation: str = "scan_zscore"
) -> NetworkView:
    """The voxel classifier's view of a CT: RAS, ``spacing_mm`` isotropic, normalised.

    Args:
        scan: :class:`~spinefx.image.Image` in HU, any orientation and spacing.
        spacing_mm: isotropic voxel size of the network input (1 mm in the paper).
        normalisation: ``scan_zscore`` (zero mean, unit sd per scan, as the paper) or ``ct``
            (HU clipped and scaled by the fixed ``conventions.CT_NORMALISATION``).

    Returns:
        :class:`NetworkView` (the float32 image and its typed intensity transform). Map
        results back onto the scan with ``resample_like``.
    """
    from spinefx.conventions import AIR_HU, CT_NORMALISATION
    from spinefx.preprocessing import reorient, resample_to_spacing

    ras = reorient(scan, "RAS")
    if np.allclose(ras.spacing_mm, spacing_mm, atol=1e-3):
        iso = ras.with_data(np.asarray(ras.data, dtype=np.float32))
    else:
        iso = resample_to_spacing(ras, spacing_mm, interpolation="linear", fill_value=AIR_HU)
    data = np.asarray(iso.data, dtype=np.float32)
    if normalisation == "ct":
        low, high = CT_NORMALISATION["clip_hu"]
        data = np.clip(data, low, high)
        mean, std = float(CT_NORMALISATION["mean_hu"]), float(CT_NORMALISATION["std_hu"])
    elif normalisation == "scan_zscore":
        mean, std = float(data.mean()), float(data.std())
    else:
        raise ValueError(f"unknown normalisation {normalisation!r} (scan_zscore or ct)")
    data = (data - mean) / max(std, 1e-6)
    return NetworkView(iso.with_data(data.astype(np.float32)), mean, std)
