"""The bone model of the synthetic vertebrae and ribs: trabecular texture, cortex, veins.

Trabecular bone is a periodic, anisotropic band-pass texture (grain elongated along the
vertebral axis: vertical plates and rods) sampled in each vertebra's own frame, so the
striation follows the vertebra; osteoporotic bone is coarser and more contrasted. The cortex
is a partial-volume blend of compact bone over the outer ``thickness`` mm (side walls thin,
endplates thicker, with subchondral sclerosis). The basivertebral vein is a dark channel
entering the body through the middle of its posterior wall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from spinefx.synthesis.config import AnatomyConfig

_TILE_VOX = 80
_TILE_MM = 0.6


@dataclass(frozen=True)
class BoneSpec:
    """A patient's bone model (drawn once per scan).

    Attributes:
        grain_mm: texture grain across the vertebral axis, mm.
        anisotropy: grain along the axis / across it.
        wall_mm: cortical thickness of side walls and posterior elements, mm.
        endplate_mm: cortical thickness of the endplates, mm.
        sclerosis_hu: extra HU of the subchondral bone next to the endplates.
        posterior_extra_hu: posterior elements are denser than the body's trabecular bone.
        vein_hu: HU of the basivertebral venous channel.
    """

    grain_mm: float
    anisotropy: float
    wall_mm: float
    endplate_mm: float
    sclerosis_hu: float
    posterior_extra_hu: float
    vein_hu: float


def sample_bone(
    config: AnatomyConfig, rng: np.random.Generator, *, osteoporotic: bool, vein_hu: float
) -> BoneSpec:
    """Draw the bone model of one patient (osteoporosis: coarse grain, thin cortex)."""
    grain = rng.uniform(*config.trabecular_grain_mm_range) * (1.35 if osteoporotic else 1.0)
    wall_lo, wall_hi = config.cortical_thickness_mm_range
    wall = (
        rng.uniform(wall_lo, (wall_lo + wall_hi) / 2)
        if osteoporotic
        else rng.uniform(wall_lo, wall_hi)
    )
    return BoneSpec(
        grain_mm=float(grain),
        anisotropy=float(rng.uniform(2.5, 4.0) if osteoporotic else rng.uniform(1.8, 3.0)),
        wall_mm=float(wall),
        endplate_mm=float(rng.uniform(*config.endplate_thickness_mm_range)),
        sclerosis_hu=float(rng.uniform(50.0, 150.0)),
        posterior_extra_hu=float(rng.uniform(40.0, 120.0)),
        vein_hu=float(vein_hu),
    )


@dataclass(frozen=True)
class TextureTile:
    """A periodic unit-variance texture volume, sampled at local (u, v, w) mm with wrap-around.

    Attributes:
        data: ``(n, n, n)`` float32, axis 2 along the vertebral axis.
        voxel_mm: size of a tile voxel, mm.
    """

    data: np.ndarray
    voxel_mm: float

    def sample(self, u, v, w, offset_mm: np.ndarray, *, zoom: float = 1.0) -> np.ndarray:
        """Texture at local coordinates (arrays of one shape), shifted by ``offset_mm``.

        ``zoom`` > 1 magnifies the texture (a coarser pattern from the same tile).
        """
        coords = np.stack(
            [
                (np.ravel(c) / zoom + o) / self.voxel_mm
                for c, o in zip((u, v, w), offset_mm, strict=True)
            ]
        )
        out = ndimage.map_coordinates(self.data, coords, order=1, mode="grid-wrap")
        return out.reshape(np.shape(u)).astype(np.float32)


def trabecular_tile(rng: np.random.Generator, spec: BoneSpec, *, osteoporotic: bool) -> TextureTile:
    """Anisotropic band-pass noise made periodic by filtering in the Fourier domain.

    The grain is ``spec.grain_mm`` across the axis and ``anisotropy`` times that along it; a
    soft saturation turns the Gaussian field into plate-like bright trabeculae over darker
    marrow (more so in osteoporosis, where the marrow spaces grow).
    """
    n = _TILE_VOX
    noise = rng.standard_normal((n, n, n)).astype(np.float32)
    f = np.fft.fftfreq(n, d=_TILE_MM).astype(np.float32)
    fz = np.fft.rfftfreq(n, d=_TILE_MM).astype(np.float32)
    fu, fv, fw = f[:, None, None], f[None, :, None], fz[None, None, :]
    s_across, s_along = spec.grain_mm / 2.0, spec.grain_mm * spec.anisotropy / 2.0

    def low_pass(scale: float) -> np.ndarray:
        q = (s_across * scale) ** 2 * (fu**2 + fv**2) + (s_along * scale) ** 2 * fw**2
        return np.exp(-2.0 * np.pi**2 * q)

    spectrum = np.fft.rfftn(noise) * (low_pass(1.0) - 0.75 * low_pass(3.0))
    field = np.fft.irfftn(spectrum, s=noise.shape, axes=(0, 1, 2)).astype(np.float32)
    field /= field.std() + 1e-6
    gain = 1.6 if osteoporotic else 1.0
    tex = np.tanh(gain * field) - (0.35 if osteoporotic else 0.15) * np.maximum(-field, 0)
    tex = (tex - tex.mean()) / (tex.std() + 1e-6)
    return TextureTile(data=tex.astype(np.float32), voxel_mm=_TILE_MM)


def cortical_fraction(depth_mm: np.ndarray, thickness_mm: float, spacing_mm: float) -> np.ndarray:
    """Share of a voxel (centre ``depth_mm`` inside the surface) covered by the cortex."""
    return np.clip(
        (thickness_mm - np.maximum(depth_mm - spacing_mm / 2, 0.0)) / spacing_mm, 0.0, 1.0
    ).astype(np.float32)


def basivertebral_weight(u, v, height_pos, *, a: float, b: float, length_mm: float) -> np.ndarray:
    """0-1 weight of the basivertebral venous channel at body-local (u, v) mm.

    The channel enters through the middle of the posterior wall (``v = -0.9 b``) at mid-height
    (``height_pos`` 0 at the lower, 1 at the upper endplate), narrows over ``length_mm``
    anteriorly and splits into two thin branches (the Y seen on axial slices).
    """
    s = (v + 0.9 * b) / length_mm
    half_width = 0.6 + 2.2 * np.clip(1.0 - s, 0.0, 1.0) ** 0.7
    half_height = 0.06 + 0.05 * np.clip(1.0 - s, 0.0, 1.0)
    dz = np.abs(height_pos - 0.5) / half_height
    trunk = np.clip(1.5 - np.maximum(np.abs(u) / half_width, dz), 0.0, 1.0) * (s <= 1.0)
    # branches from the end of the trunk towards the anterolateral body
    t = np.clip(s - 0.8, 0.0, 1.2)
    branch_u = np.abs(np.abs(u) - 0.3 * a * t / 1.2)
    branch = np.clip(1.2 - np.maximum(branch_u / 0.8, dz), 0.0, 1.0) * (s > 0.8) * (s < 2.0)
    return np.maximum(trunk, 0.7 * branch).astype(np.float32)
