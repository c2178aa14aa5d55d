"""A hand-built CNN and dataset with known dissection answers (shared by the tests).

Model: ``features.conv`` = 1x1x1 Conv3d(1 -> 3, no bias) with weights (+1, -1, 0), then ReLU,
then 2x max-pooling (``features.pool``, the dissected layer; activation grid 4^3 for 8^3
inputs). Unit 0 fires on bright voxels, unit 1 on negative voxels, unit 2 never. The logit is
``max(unit 0) - 0.5``: bright samples are predicted fractured.

Dataset: 8 samples; sample i < 4 is fractured (label 1) with one voxel of value i + 1 at
``BRIGHT_VOXEL``; sample i >= 4 is not, with one voxel of value -(i - 3) there.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

BRIGHT_VOXEL = (5, 2, 6)
INPUT_AFFINE = np.array(
    [[0.0, 0.0, 2.0, -30.0], [2.0, 0.0, 0.0, 10.0], [0.0, 2.0, 0.0, 5.0], [0, 0, 0, 1]]
)


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        conv = nn.Conv3d(1, 3, kernel_size=1, bias=False)
        with torch.no_grad():
            conv.weight[:] = torch.tensor([1.0, -1.0, 0.0]).reshape(3, 1, 1, 1, 1)
        self.features = nn.Sequential()
        self.features.add_module("conv", conv)
        self.features.add_module("relu", nn.ReLU())
        self.features.add_module("pool", nn.MaxPool3d(2))

    def forward(self, x):
        a = self.features(x)
        return a[:, 0].flatten(1).amax(dim=1) - 0.5


def toy_samples(n_pos: int = 4, n_neg: int = 4) -> list[tuple]:
    out = []
    for i in range(n_pos + n_neg):
        x = torch.zeros(1, 8, 8, 8)
        value = i + 1.0 if i < n_pos else -(i - n_pos + 1.0)
        x[(0, *BRIGHT_VOXEL)] = value
        meta = {"affine": INPUT_AFFINE, "case_id": f"case{i}", "level": "L1"}
        out.append((x, int(i < n_pos), meta))
    return out


def toy_loader(batch_size: int = 3):
    from spinefx.interpretation.activations import collate_samples

    return torch.utils.data.DataLoader(
        toy_samples(), batch_size=batch_size, shuffle=False, collate_fn=collate_samples
    )
