"""Tiny training configs and phantom scans shared by the training tests (seconds per run).

Imported by tests/training (``tests/helpers`` is on pytest's ``pythonpath``).
"""

from __future__ import annotations

import numpy as np

from spinefx.config import from_dict
from spinefx.image import Image
from spinefx.records import VertebraRecord
from spinefx.runs.configs import PatchTrainingConfig, voxel_preset

#: a 4-level patch classifier on 16³ patches at 6 mm (the paper-size model is tested in
#: tests/models)
TINY_MODEL = {
    "widths": [4, 8, 8, 16],
    "patch_size_vox": 16,
    "spacing_mm": 6.0,
    "head_conv_widths": [8, 4],
    "head_mlp_widths": [16, 8],
}


def tiny_patch_config(**changes) -> PatchTrainingConfig:
    """Two epochs of :data:`TINY_MODEL` in batches of 8; ``changes`` override any field."""
    values = {"model": TINY_MODEL, "batch_size": 8, "max_epochs": 2, "patience_epochs": 5}
    return from_dict(PatchTrainingConfig, {**values, **changes})


def tiny_voxel_config(**changes):
    """The cpu voxel preset shrunk to a 20 k-parameter model, two epochs of 30 segments."""
    model = {"target_params": 20_000, "fc_widths": [16, 16], "input_spacing_mm": 2.0}
    values = {
        "epochs": 2,
        "subepochs": 1,
        "segments_per_subepoch": 30,
        "val_segments": 20,
        "model": model,
    }
    return voxel_preset("cpu", **{**values, **changes})


def phantom(seed: int, fractured: tuple[int, ...] = ()) -> tuple[Image, list[VertebraRecord]]:
    """A 2 mm, LPS-ordered 'spine' of 4 bright bodies (T12-L4 labels 21-24) in a soft-tissue
    cylinder (world mm); the bodies in ``fractured`` are 45 % lower and graded 2."""
    rng = np.random.default_rng(seed)
    shape = (24, 24, 56)
    affine = np.diag([-2.0, -2.0, 2.0, 1.0])
    affine[:3, 3] = [46.0, 46.0, 0.0]
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    x, y, z = np.moveaxis(Image(np.zeros(shape, np.float32), affine).voxel_to_world(ijk), -1, 0)
    data = np.full(shape, -1000.0, np.float32)
    data[(x - 23) ** 2 + (y - 23) ** 2 < 20**2] = 40.0
    records = []
    for i, label in enumerate((21, 22, 23, 24)):
        cz = 95 - i * 26
        h = 9.0 * (0.55 if label in fractured else 1.0)
        data[((x - 23) ** 2 + (y - 23) ** 2 < 11**2) & (np.abs(z - cz) < h)] = 300.0
        grade = 2 if label in fractured else 0
        records.append(VertebraRecord(f"p{seed}", label, (23.0, 23.0, float(cz)), grade))
    data += rng.normal(0, 20, shape).astype(np.float32)
    return Image(data, affine), records
