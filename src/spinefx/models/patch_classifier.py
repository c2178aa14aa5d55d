"""The vertebra patch classifier of Engstler et al. 2022: 3D U-Net encoder + classification head.

Differences from the authors' public code (see ``shared/notes/engstler-public-code.md``), each
deliberate:

* dropout is actually applied (``dropout``, 0.3 by default) after every head stage;
* the head's conv stages get a LeakyReLU after their InstanceNorm (the original had no
  nonlinearity between four convolutions, which collapses them to one linear map);
* normalisation in eval mode never depends on the other samples of a batch (running
  statistics for ``norm="batch"``; ``"group"``/``"instance"`` are batch-free by construction).

The model is tied to its input size (the head flattens the final map, no global pooling), so
``patch_size_vox`` is part of the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from spinefx.models.blocks import NORMS, EncoderLevel, LinearNormAct

#: Name of the layer read by network dissection: the 4th encoder level's final ReLU output,
#: shape ``(N, widths[-1], S/8, S/8, S/8)`` for a patch of side S (512 x 12^3 for the paper preset).
DISSECTED_LAYER = "encoder.level4"


@dataclass(frozen=True)
class PatchClassifierConfig:
    """Architecture and input geometry of the patch classifier.

    Attributes:
        in_channels: input channels (1: CT in [0, 1] after the HU window).
        widths: output widths of the four encoder levels (each level's first conv has half).
        patch_size_vox: side of the cubic input patch in voxels (divisible by 8).
        spacing_mm: isotropic voxel size of the input patch in mm.
        norm: "batch" (running stats in eval), "group" or "instance".
        head_conv_widths: conv stages of the head, applied to the encoder output.
        head_mlp_widths: hidden widths of the MLP after flattening.
        dropout: dropout probability after every head stage (applied in training only).
    """

    kind: ClassVar[str] = "patch_classifier"

    in_channels: int = 1
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    patch_size_vox: int = 96
    spacing_mm: float = 1.0
    norm: str = "batch"
    head_conv_widths: tuple[int, ...] = (256, 128, 64, 8)
    head_mlp_widths: tuple[int, ...] = (256, 128, 64)
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if len(self.widths) != 4 or min(self.widths) < 2:
            raise ValueError(f"widths must be four positive widths >= 2, got {self.widths}")
        if self.patch_size_vox % 8 or self.patch_size_vox < 8:
            raise ValueError(f"patch_size_vox must be a multiple of 8, got {self.patch_size_vox}")
        if self.spacing_mm <= 0:
            raise ValueError(f"spacing_mm must be positive, got {self.spacing_mm}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def feature_map_size_vox(self) -> int:
        """Side of the encoder's final feature map (three 2x poolings)."""
        return self.patch_size_vox // 8


#: Named presets. ``paper``: 96^3 at 1 mm, full widths (what GPU users run, ~15 M parameters).
#: ``cpu``: 32^3 at 3 mm (the same 96 mm field of view), widths / 8: ~0.26 M parameters, about
#: 1 s per batch of 16 (forward + backward) on one busy CPU core, so it trains in minutes.
PRESETS: dict[str, PatchClassifierConfig] = {
    "paper": PatchClassifierConfig(),
    "cpu": PatchClassifierConfig(
        widths=(8, 16, 32, 64),
        patch_size_vox=32,
        spacing_mm=3.0,
        head_conv_widths=(32, 16, 8, 8),
        head_mlp_widths=(128, 64, 32),
        dropout=0.0,  # narrow head: 0.3 stalled learning on CPU budgets (see patch_cpu.yaml)
    ),
}


class PatchEncoder(nn.Module):
    """Four U-Net encoder levels with 2x max-pooling between them (none after the last).

    Shapes: ``(N, in_channels, S, S, S) -> (N, widths[3], S/8, S/8, S/8)``.
    """

    def __init__(self, config: PatchClassifierConfig) -> None:
        super().__init__()
        w1, w2, w3, w4 = config.widths
        self.level1 = EncoderLevel(config.in_channels, w1, norm=config.norm)
        self.pool1 = nn.MaxPool3d(2)
        self.level2 = EncoderLevel(w1, w2, norm=config.norm)
        self.pool2 = nn.MaxPool3d(2)
        self.level3 = EncoderLevel(w2, w3, norm=config.norm)
        self.pool3 = nn.MaxPool3d(2)
        self.level4 = EncoderLevel(w3, w4, norm=config.norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.level1(x))
        x = self.pool2(self.level2(x))
        x = self.pool3(self.level3(x))
        return self.level4(x)


class HeadConvStage(nn.Sequential):
    """Conv3d(k=3) -> InstanceNorm3d(affine) -> LeakyReLU -> Dropout(p) (nonlinearity added)."""

    def __init__(self, in_channels: int, out_channels: int, *, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm = nn.InstanceNorm3d(out_channels, affine=True)
        self.act = nn.LeakyReLU(0.01)
        self.dropout = nn.Dropout(dropout)


class ClassificationHead(nn.Module):
    """Conv stages, flatten, MLP, one logit.

    Shapes: ``(N, widths[3], s, s, s) -> (N,)`` logits, ``s = patch_size_vox / 8``.
    """

    def __init__(self, config: PatchClassifierConfig) -> None:
        super().__init__()
        channels = [config.widths[-1], *config.head_conv_widths]
        self.convs = nn.Sequential(
            *[
                HeadConvStage(c_in, c_out, dropout=config.dropout)
                for c_in, c_out in zip(channels[:-1], channels[1:], strict=True)
            ]
        )
        flat = channels[-1] * config.feature_map_size_vox**3
        features = [flat, *config.head_mlp_widths]
        mlp_norm = "batch" if config.norm == "batch" else "layer"
        self.mlp = nn.Sequential(
            *[
                LinearNormAct(f_in, f_out, norm=mlp_norm, dropout=config.dropout)
                for f_in, f_out in zip(features[:-1], features[1:], strict=True)
            ]
        )
        self.logit = nn.Linear(features[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        x = self.mlp(torch.flatten(x, start_dim=1))
        return self.logit(x).squeeze(-1)


class PatchClassifier(nn.Module):
    """Vertebra fracture classifier on one spine-aligned patch.

    Input: ``(N, in_channels, S, S, S)`` float32, CT scaled to [0, 1] from the HU window
    (``spinefx.conventions.HU_CLIP``), S = ``config.patch_size_vox`` at ``config.spacing_mm``.
    Output: ``(N,)`` fracture logits (sigmoid gives the probability of Genant grade >= 1).
    """

    def __init__(self, config: PatchClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = PatchEncoder(config)
        self.head = ClassificationHead(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.config.patch_size_vox
        if x.ndim != 5 or tuple(x.shape[1:]) != (self.config.in_channels, size, size, size):
            raise ValueError(
                f"expected input (N, {self.config.in_channels}, {size}, {size}, {size}), "
                f"got {tuple(x.shape)}"
            )
        return self.head(self.encoder(x))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
