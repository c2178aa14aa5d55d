"""Where an activation voxel lies: activation grid <-> input grid <-> world RAS+ mm.

Convention (stated once, used everywhere in dissection): an encoder of total stride ``s``
(``input_shape / activation_shape`` per axis) makes activation voxel ``i`` summarise the input
block ``[i s, (i + 1) s)``, so its centre lies at input voxel coordinate ``(i + 0.5) s - 0.5``.
This is exactly the correspondence of ``torch.nn.functional.interpolate(...,
align_corners=False)``, which is therefore used to upsample activations to input resolution
(trilinear, then threshold, as in the paper). ``align_corners=True`` (the authors' choice)
would instead pin activation voxel 0 to input voxel 0 and stretch the grid, shifting maps by
up to ``(s - 1) / 2`` input voxels at the borders.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from spinefx.errors import InputError


def grid_stride(input_shape: tuple[int, ...], activation_shape: tuple[int, ...]) -> np.ndarray:
    """Stride ``s`` per axis (input voxels per activation voxel), float ``(D,)``."""
    if len(input_shape) != len(activation_shape):
        raise InputError(
            f"input grid {tuple(input_shape)} and activation grid {tuple(activation_shape)} "
            "have different dimensionality",
            fix="dissect a layer whose output keeps the input's spatial dimensions",
        )
    return np.asarray(input_shape, dtype=np.float64) / np.asarray(activation_shape, dtype=float)


def activation_affine(
    input_affine: np.ndarray, input_shape: tuple[int, ...], activation_shape: tuple[int, ...]
) -> np.ndarray:
    """Voxel -> world affine ``(4, 4)`` of the activation grid.

    Args:
        input_affine: ``(4, 4)`` input-grid voxel -> world RAS+ mm.
        input_shape: spatial shape of the input ``(X, Y, Z)``.
        activation_shape: spatial shape of the activation map ``(X', Y', Z')``.
    """
    stride = grid_stride(input_shape, activation_shape)
    to_input = np.eye(4)
    to_input[:3, :3] = np.diag(stride)
    to_input[:3, 3] = (stride - 1.0) / 2.0
    return np.asarray(input_affine, dtype=np.float64) @ to_input


def activation_to_input_voxel(
    ijk: np.ndarray, input_shape: tuple[int, ...], activation_shape: tuple[int, ...]
) -> np.ndarray:
    """Continuous input-grid coordinates ``(..., 3)`` of activation-grid indices ``(..., 3)``."""
    stride = grid_stride(input_shape, activation_shape)
    return (np.asarray(ijk, dtype=np.float64) + 0.5) * stride - 0.5


def upsample(maps: torch.Tensor | np.ndarray, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Trilinear upsampling of activation maps to the input grid (``align_corners=False``).

    Args:
        maps: ``(*S)``, ``(K, *S)`` or ``(B, K, *S)`` activation maps.
        input_shape: target spatial shape ``(X, Y, Z)``.

    Returns:
        float32 tensor with the same leading dimensions and spatial shape ``input_shape``.
    """
    maps = torch.as_tensor(maps, dtype=torch.float32)
    spatial = len(input_shape)
    lead = maps.shape[: maps.ndim - spatial]
    flat = maps.reshape(1, -1, *maps.shape[maps.ndim - spatial :])
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[spatial]
    out = F.interpolate(
        flat, size=tuple(int(s) for s in input_shape), mode=mode, align_corners=False
    )
    return out.reshape(*lead, *input_shape)


def upsample_mask(
    act: torch.Tensor | np.ndarray,
    threshold: float,
    input_shape: tuple[int, ...],
    *,
    mode: str = "trilinear",
) -> np.ndarray:
    """Bool mask of one unit on the input grid.

    ``mode="trilinear"`` (the paper): upsample ``A`` with :func:`upsample`, then ``> T``.
    ``mode="nearest"``: ``A > T`` on the activation grid, each cell covering its input block
    ``[i s, (i + 1) s)`` (the cell's footprint). For even strides no input voxel sits on a
    cell centre, so a unit that exceeds ``T`` only slightly, in one cell, has an empty
    trilinear mask although it is enabled; the footprint is never empty when it is enabled.
    """
    act = torch.as_tensor(act, dtype=torch.float32)
    if mode == "trilinear":
        return (upsample(act, input_shape) > threshold).numpy()
    if mode != "nearest":
        raise ValueError(f"mode must be 'trilinear' or 'nearest', got {mode!r}")
    above = (act > threshold).float()[None, None]
    size = tuple(int(s) for s in input_shape)
    return F.interpolate(above, size=size, mode="nearest")[0, 0].numpy() > 0.5


def sample_onto_grid(
    data: np.ndarray,
    source_affine: np.ndarray,
    target_affine: np.ndarray,
    target_shape: tuple[int, ...],
    *,
    order: int = 0,
    fill_value: float = 0.0,
) -> np.ndarray:
    """Resample a volume onto another grid of the same world (RAS+ mm).

    Each target voxel centre is mapped to world, then to source voxel coordinates, and
    sampled there (``order`` 0 = nearest for label maps, 1 = trilinear). Points outside the
    source get ``fill_value``. Written with scipy because the target grid here is an arbitrary
    affine (patch frame or scan), which ``extract_patch`` (local frames) does not take.

    Args:
        data: source array ``(X, Y, Z)``.
        source_affine, target_affine: ``(4, 4)`` voxel -> world maps.
        target_shape: ``(X', Y', Z')``.
    """
    from scipy.ndimage import map_coordinates

    to_source = np.linalg.inv(np.asarray(source_affine, float)) @ np.asarray(target_affine, float)
    grid = np.indices(tuple(int(s) for s in target_shape), dtype=np.float64).reshape(3, -1)
    coords = to_source[:3, :3] @ grid + to_source[:3, 3:4]
    out = map_coordinates(
        np.asarray(data), coords, order=order, mode="constant", cval=fill_value, prefilter=False
    )
    return out.reshape(tuple(int(s) for s in target_shape))


def map_onto_scan(
    data: np.ndarray, patch_affine: np.ndarray, scan_affine: np.ndarray, scan_shape, *, order=1
) -> np.ndarray:
    """Put a map computed on a patch grid back onto the scan grid (zeros outside the patch).

    Only the scan voxels inside the patch's bounding box are sampled, so the cost is that of
    the patch, not of the scan. Used when ``spinefx.preprocessing.patch_map_to_scan`` is not
    available in this checkout.

    Returns:
        float32 array of shape ``scan_shape``.
    """
    data = np.asarray(data, dtype=np.float32)
    corners = np.array(np.meshgrid(*[[-0.5, s - 0.5] for s in data.shape], indexing="ij"))
    corners = corners.reshape(3, -1).T
    to_scan = np.linalg.inv(np.asarray(scan_affine, float)) @ np.asarray(patch_affine, float)
    scan_pts = corners @ to_scan[:3, :3].T + to_scan[:3, 3]
    lo = np.clip(np.floor(scan_pts.min(axis=0)).astype(int), 0, None)
    hi = np.minimum(np.ceil(scan_pts.max(axis=0)).astype(int) + 1, np.asarray(scan_shape))
    out = np.zeros(tuple(int(s) for s in scan_shape), dtype=np.float32)
    if np.any(hi <= lo):
        return out
    box_affine = np.asarray(scan_affine, float).copy()
    box_affine[:3, 3] = box_affine[:3, :3] @ lo + box_affine[:3, 3]
    box = sample_onto_grid(data, patch_affine, box_affine, tuple(hi - lo), order=order)
    out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = box
    return out
