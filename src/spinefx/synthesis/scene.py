"""The render context of the soft-tissue painters: coordinates, spine track, texture fields.

Soft tissue is drawn slice by slice around the spine centre interpolated at each world z
(cheap, and accurate enough for tissue without a label). A :class:`Slab` is the part of the
build grid between two heights: broadcastable world coordinates, the spine track, texture
fields, and views of the HU and tissue-label volumes that painters write into. Painters work
on chunks of a few dozen slices so that their temporaries stay small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinefx.synthesis.grid import BuildGrid, smooth_noise
from spinefx.synthesis.intensities import TISSUE_LABELS, TissueIntensities
from spinefx.synthesis.spine import PatientSpec, VertebraSpec

#: Texture fields of a scene and their length scales, mm.
FIELD_SCALES_MM: dict[str, float] = {"low": 14.0, "mid": 6.0, "fine": 3.0}


def spine_track(vertebrae: list[VertebraSpec], z: np.ndarray) -> dict[str, np.ndarray]:
    """Spine centre x, y, body half-width a, half-depth b, lumbar weight and level index per z.

    ``level`` is the fractional index of the vertebra at that height (0 = T1 centre).
    """
    order = np.argsort([s.origin_mm[2] for s in vertebrae])
    vs = [vertebrae[i] for i in order]
    zs = np.array([s.origin_mm[2] for s in vs])
    index = np.arange(len(vertebrae), dtype=float)[order]
    return {
        "x": np.interp(z, zs, [s.origin_mm[0] for s in vs]),
        "y": np.interp(z, zs, [s.origin_mm[1] for s in vs]),
        "a": np.interp(z, zs, [s.width_mm / 2 for s in vs]),
        "b": np.interp(z, zs, [s.depth_mm / 2 for s in vs]),
        "lumbar": np.interp(z, zs, [0.0 if s.thoracic else 1.0 for s in vs]),
        "level": np.interp(z, zs, index),
    }


@dataclass
class Slab:
    """Voxels of the build grid between two heights (arrays broadcast to ``(nx, ny, nz)``).

    Attributes:
        x, y: world mm, shapes ``(nx, 1, 1)`` and ``(1, ny, 1)``.
        z: world mm, ``(1, 1, nz)``.
        track: :func:`spine_track` values, each ``(1, 1, nz)``.
        fields: unit-variance smooth noise by name (:data:`FIELD_SCALES_MM` and the two
            vertically stretched ``vessel_a`` / ``vessel_b``), float16 views.
        hu: float32 HU view; labels: uint8 tissue-label view (:data:`TISSUE_LABELS`).
        patient: the patient (tissue HU, body layout, vertebrae).
        index: the slab's slice of the grid's z axis.
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    track: dict[str, np.ndarray]
    fields: dict[str, np.ndarray]
    hu: np.ndarray
    labels: np.ndarray
    patient: PatientSpec
    index: slice

    @property
    def intensities(self) -> TissueIntensities:
        return self.patient.hu

    @property
    def dx(self) -> np.ndarray:
        """Lateral offset from the spine centre, mm (+ right)."""
        return self.x - self.track["x"]

    @property
    def dy(self) -> np.ndarray:
        """Anterior offset from the vertebral-body centre, mm."""
        return self.y - self.track["y"]

    def field(self, name: str) -> np.ndarray:
        """A texture field as float32."""
        return np.asarray(self.fields[name], dtype=np.float32)

    def paint(self, mask: np.ndarray, tissue: str, texture: str | None = "mid", gain=1.0) -> None:
        """HU ``mean + gain * sd * field`` of ``tissue`` and its label, where ``mask``."""
        mask = np.broadcast_to(mask, self.hu.shape)
        value = self.intensities.mean_hu[tissue]
        if texture is not None:
            tex = np.asarray(self.fields[texture][mask], dtype=np.float32)
            value = value + gain * self.intensities.sd_hu[tissue] * tex
        self.hu[mask] = value
        self.labels[mask] = TISSUE_LABELS[tissue]

    def within(self, z_lo: float = -np.inf, z_hi: float = np.inf) -> Slab | None:
        """The part of this slab with world z in ``[z_lo, z_hi]`` (views), or None."""
        k = np.flatnonzero((self.z[0, 0] >= z_lo) & (self.z[0, 0] <= z_hi))
        if k.size == 0:
            return None
        return self._sub(slice(int(k[0]), int(k[-1]) + 1))

    def chunks(self, n_slices: int):
        """Consecutive sub-slabs of ``n_slices`` slices (bounded temporaries when painting).

        Their texture fields are float32 copies (arithmetic on float16 is slow).
        """
        for k in range(0, self.z.shape[2], n_slices):
            yield self._sub(slice(k, min(k + n_slices, self.z.shape[2])), float32=True)

    def _sub(self, sl: slice, *, float32: bool = False) -> Slab:
        start = self.index.start + sl.start
        dtype = np.float32 if float32 else None
        return Slab(
            x=self.x,
            y=self.y,
            z=self.z[:, :, sl],
            track={k: v[:, :, sl] for k, v in self.track.items()},
            fields={k: np.asarray(v[:, :, sl], dtype=dtype) for k, v in self.fields.items()},
            hu=self.hu[:, :, sl],
            labels=self.labels[:, :, sl],
            patient=self.patient,
            index=slice(start, start + sl.stop - sl.start),
        )


def create_slab(grid: BuildGrid, patient: PatientSpec, rng: np.random.Generator) -> Slab:
    """The whole build grid as air, with the spine track and texture fields (drawn from rng)."""
    vertebrae = [v for v in patient.vertebrae if v.label != 26]
    z = grid.axis_mm(2)
    track = {k: v.astype(np.float32)[None, None, :] for k, v in spine_track(vertebrae, z).items()}
    fields = {
        name: smooth_noise(grid.shape, rng, scale_vox=scale / grid.spacing_mm).astype(np.float16)
        for name, scale in FIELD_SCALES_MM.items()
    }
    vessel_scale = (5.0 / grid.spacing_mm, 5.0 / grid.spacing_mm, 15.0 / grid.spacing_mm)
    for name in ("vessel_a", "vessel_b"):  # stretched along z: vessels run cranio-caudally
        fields[name] = smooth_noise(grid.shape, rng, scale_vox=vessel_scale).astype(np.float16)
    return Slab(
        x=grid.axis_mm(0).astype(np.float32)[:, None, None],
        y=grid.axis_mm(1).astype(np.float32)[None, :, None],
        z=z.astype(np.float32)[None, None, :],
        track=track,
        fields=fields,
        hu=np.full(grid.shape, patient.hu.mean_hu["air"], np.float32),
        labels=np.zeros(grid.shape, np.uint8),
        patient=patient,
        index=slice(0, grid.shape[2]),
    )


def cavity_back(s: Slab) -> np.ndarray:
    """Anterior offset (mm from the body centre) of the cavity's back wall at each (x, z).

    In the abdomen it runs along the front of the transverse processes and sinks laterally
    into the flanks; in the thorax the lungs fill everything behind the mediastinum.
    """
    t = s.track
    flank = np.clip((np.abs(s.dx) - t["a"] - 10.0) / 60.0, 0.0, 1.0)
    abdominal = -t["b"] - 10.0 - 20.0 * flank
    return abdominal * t["lumbar"] + (1.0 - t["lumbar"]) * 0.0
