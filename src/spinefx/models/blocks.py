"""Building blocks of the 3D CNNs: conv-norm-ReLU units, encoder levels, MLP units.

Shapes follow PyTorch: ``(N, C, X, Y, Z)`` for volumes, where the spatial axes are the patch's
local frame axes (x left-right, y anterior, z cranial along the spine).
"""

from __future__ import annotations

from torch import nn

#: Normalisations a config may name. "batch" uses batch statistics in training and the
#: running statistics in ``eval()`` (the fix of the authors' ContBatchNorm3d, which always
#: used batch statistics); "group" and "instance" never depend on other samples.
NORMS = ("batch", "group", "instance")


def norm3d(kind: str, channels: int, *, groups: int = 8) -> nn.Module:
    """A 3-D normalisation layer of the given kind for ``channels`` feature maps."""
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "group":
        return nn.GroupNorm(min(groups, channels), channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    raise ValueError(f"unknown norm {kind!r}; use one of {NORMS}")


def norm1d(kind: str, features: int) -> nn.Module:
    """The 1-D counterpart used in the MLP head (LayerNorm for batch-free kinds)."""
    if kind == "batch":
        return nn.BatchNorm1d(features)
    return nn.LayerNorm(features)


class ConvNormAct(nn.Sequential):
    """Conv3d(k=3, pad=1) -> norm -> ReLU; keeps the spatial size.

    Shapes: ``(N, in_channels, X, Y, Z) -> (N, out_channels, X, Y, Z)``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, norm: str) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm = norm3d(norm, out_channels)
        self.act = nn.ReLU(inplace=False)  # not in place: hooks must see the activation


class EncoderLevel(nn.Sequential):
    """One U-Net encoder level: two ConvNormAct units, the first at half the output width.

    As in Models Genesis / the authors' ``DownTransition``: level widths 32-64, 64-128, ...
    The output is the second unit's ReLU, i.e. the level's activation before pooling.
    """

    def __init__(self, in_channels: int, out_channels: int, *, norm: str) -> None:
        super().__init__()
        mid = max(1, out_channels // 2)
        self.conv1 = ConvNormAct(in_channels, mid, norm=norm)
        self.conv2 = ConvNormAct(mid, out_channels, norm=norm)


class LinearNormAct(nn.Sequential):
    """Linear -> norm -> LeakyReLU -> Dropout(p) (the authors' LinearBlock, dropout applied)."""

    def __init__(self, in_features: int, out_features: int, *, norm: str, dropout: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.norm = norm1d(norm, out_features)
        self.act = nn.LeakyReLU(0.01)
        self.dropout = nn.Dropout(dropout)
