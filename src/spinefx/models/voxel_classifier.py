"""DeepMedic-style dual-pathway voxel classifier (Nicolaes et al. 2019; Kamnitsas et al. 2017).

Every voxel of a 1 mm, zero-mean/unit-variance CT is classified as background / normal
vertebra / fractured vertebra. Two pathways of 8 *valid* convolutions see the same output
voxels: the normal pathway at full resolution (receptive field 17 voxels per axis) and the
subsampled pathway on every 3rd voxel of a larger, centred segment (receptive field 17 low-res
voxels = 51 mm). The low-res features are upsampled by repetition, concatenated with the
normal ones, and classified by fully-connected layers implemented as 1x1x1 convolutions.

Arrays are ``(batch, channel, x, y, z)`` in the RAS+ voxel order of the resampled scan (see
:mod:`spinefx.conventions`). Variants (paper Table 1): ``3d`` (3x3x3 kernels), ``1slice``
(1x3x3 throughout) and ``5slices`` (5x3x3 first layer, then 1x3x3). The paper states that
the 2-D variants see "17^2 in the sagittal plane", so the *slice axis* (the kernel's 1 or 5)
is the x (left-right) axis of the RAS array: kernels span the sagittal (y, z) plane.

Widths are calibrated per variant (:func:`calibrate_widths`) to the paper's ~230 K parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from spinefx.errors import InputError

VARIANTS = ("3d", "1slice", "5slices")
INTENSITY_NORMALISATIONS: tuple[str, ...] = ("scan_zscore", "ct")
#: Output classes, in channel order.
VOXEL_CLASS_NAMES = ("background", "normal", "fractured")
#: DeepMedic's default normal-pathway widths; ours are these times a calibrated scale.
DEEPMEDIC_WIDTHS = (30, 30, 40, 40, 40, 40, 50, 50)
#: Layers (1-based, DeepMedic numbering) whose output gets the input of the previous layer added.
RESIDUAL_LAYERS = (4, 6, 8)
#: Layer names that interpretation code may hook (outputs of the named submodules).
DISSECTABLE_VOXEL_LAYERS = (
    "normal.layers.7",
    "subsampled.layers.7",
    "fc.layers.1",
)


@dataclass
class VoxelClassifierConfig:
    """Architecture of the dual-pathway voxel classifier.

    Attributes:
        variant: ``3d``, ``1slice`` or ``5slices`` (kernel shapes, paper Table 1).
        target_params: parameter budget used to calibrate widths when ``widths`` is empty.
        widths: conv widths of the 8 layers of each pathway; empty = calibrated.
        fc_widths: hidden widths of the fully-connected (1x1x1) layers.
        subsample_factor: low-res pathway stride (3 in the paper).
        n_classes: output classes (background, normal, fractured).
        in_channels: input channels (1 CT).
        dropout: dropout rate of the FC layers (DeepMedic: 0.5 for hidden FC layers).
        train_segment_vox: high-res training segment edge (DeepMedic paper: 25).
        input_spacing_mm: isotropic voxel size the network works at (paper: 1 mm; the CPU
            preset uses 2 mm, doubling every receptive field in mm, to fit CPU budgets).
        intensity_normalisation: ``scan_zscore`` (the paper / DeepMedic: each scan z-scored by
            its own mean and sd) or ``ct`` (fixed HU window and scale, nnU-Net's CT scheme;
            see ``spinefx.conventions.CT_NORMALISATION``). Per-scan z-scoring makes the same
            bone look different in a tight spine crop and in a whole-body field of view.
    """

    variant: str = "3d"
    target_params: int = 230_000
    widths: tuple[int, ...] = ()
    fc_widths: tuple[int, ...] = (150, 150)
    subsample_factor: int = 3
    n_classes: int = 3
    in_channels: int = 1
    dropout: float = 0.5
    train_segment_vox: int = 25
    input_spacing_mm: float = 1.0
    intensity_normalisation: str = "scan_zscore"
    kind: ClassVar[str] = "voxel_classifier"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise InputError(
                f"unknown voxel classifier variant {self.variant!r}", fix=f"use one of {VARIANTS}"
            )
        if self.intensity_normalisation not in INTENSITY_NORMALISATIONS:
            raise InputError(
                f"unknown intensity_normalisation {self.intensity_normalisation!r}",
                fix=f"use one of {INTENSITY_NORMALISATIONS}",
            )
        if self.widths and len(self.widths) != 8:
            raise InputError(
                f"widths must list 8 layer widths, got {len(self.widths)}",
                fix="give 8 integers or leave widths empty to calibrate them",
            )


def kernel_sizes(variant: str) -> list[tuple[int, int, int]]:
    """Kernel shape ``(x, y, z)`` of each of the 8 conv layers of a pathway."""
    if variant == "3d":
        return [(3, 3, 3)] * 8
    if variant == "1slice":
        return [(1, 3, 3)] * 8
    if variant == "5slices":
        return [(5, 3, 3)] + [(1, 3, 3)] * 7
    raise InputError(f"unknown variant {variant!r}", fix=f"use one of {VARIANTS}")


def receptive_field_vox(kernels: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """Receptive field ``(x, y, z)`` of a stack of stride-1 valid convolutions, in its own voxels."""
    return tuple(1 + sum(k[a] - 1 for k in kernels) for a in range(3))  # type: ignore[return-value]


def receptive_fields(config: VoxelClassifierConfig) -> dict[str, tuple[int, int, int]]:
    """Receptive fields in input (1 mm) voxels: ``{"normal": (17,17,17), "subsampled": (51,...)}``."""
    rf = receptive_field_vox(kernel_sizes(config.variant))
    f = config.subsample_factor
    return {"normal": rf, "subsampled": tuple(f * r for r in rf)}  # type: ignore[dict-item]


@dataclass(frozen=True)
class SegmentGeometry:
    """Sizes (voxels per axis ``x, y, z``) of matching high-res / low-res input segments.

    Attributes:
        input_vox: high-res input segment.
        output_vox: predicted output (``input - receptive_field + 1``).
        lowres_input_vox: low-res input segment (in low-res voxels).
        lowres_offset_vox: high-res index (relative to the high-res segment start) of low-res
            voxel 0; low-res voxel ``q`` samples high-res index ``offset + factor * q``.
        factor: subsampling factor.
    """

    input_vox: tuple[int, int, int]
    output_vox: tuple[int, int, int]
    lowres_input_vox: tuple[int, int, int]
    lowres_offset_vox: tuple[int, int, int]
    factor: int


def segment_geometry(
    config: VoxelClassifierConfig, *, output_vox: int | tuple[int, int, int]
) -> SegmentGeometry:
    """Segment sizes that predict an output block of ``output_vox`` voxels.

    Raises:
        InputError: when the output size is not divisible by the subsampling factor (the
            upsampled low-res output would not cover the high-res output exactly).
    """
    out = (output_vox,) * 3 if isinstance(output_vox, int) else tuple(output_vox)
    f = config.subsample_factor
    rf = receptive_field_vox(kernel_sizes(config.variant))
    bad = [o for o in out if o <= 0 or o % f]
    if bad:
        lo = max(f, (min(out) // f) * f)
        raise InputError(
            f"output size {out} does not fit the subsampled pathway (factor {f}): each output "
            f"edge must be a positive multiple of {f}",
            fix=f"use e.g. {lo} or {lo + f} output voxels (input = output + receptive field - 1)",
        )
    inp = tuple(o + r - 1 for o, r in zip(out, rf, strict=True))
    low = tuple(o // f + r - 1 for o, r in zip(out, rf, strict=True))
    # low-res output voxel m (centre of high-res outputs f*m..f*m+f-1) must sit at the same
    # place as high-res output f*m + (f-1)//2: offset + f*(m + h) = f*m + (f-1)//2 + h.
    offset = tuple((f - 1) // 2 + (r - 1) // 2 - f * ((r - 1) // 2) for r in rf)
    return SegmentGeometry(inp, out, low, offset, f)  # type: ignore[arg-type]


def geometry_for_input(config: VoxelClassifierConfig, *, input_vox: int) -> SegmentGeometry:
    """Segment geometry from a high-res *input* edge (e.g. the training segment size 25).

    Raises:
        InputError: when ``input - receptive field + 1`` is not a positive multiple of the factor.
    """
    rf = receptive_field_vox(kernel_sizes(config.variant))
    out = tuple(input_vox - r + 1 for r in rf)
    try:
        return segment_geometry(config, output_vox=out)  # type: ignore[arg-type]
    except InputError:
        f = config.subsample_factor
        ok = [s for s in range(max(rf), max(rf) + 4 * f) if all((s - r + 1) % f == 0 for r in rf)]
        raise InputError(
            f"segment size {input_vox} does not fit the pathways: input minus receptive field "
            f"{rf} plus 1 must be a positive multiple of the subsampling factor {f}",
            fix=f"use a segment size such as {ok[:3]} (+ multiples of {f})",
        ) from None


def training_geometry(config: VoxelClassifierConfig) -> SegmentGeometry:
    """Geometry of training segments: ``train_segment_vox`` is the 3d variant's input edge
    (DeepMedic paper: 25 -> 9^3 outputs); the 2-D variants predict the same output block from
    their thinner inputs (e.g. 9 x 25 x 25 for ``1slice``).
    """
    cfg3d = VoxelClassifierConfig(variant="3d", subsample_factor=config.subsample_factor)
    out = geometry_for_input(cfg3d, input_vox=config.train_segment_vox).output_vox
    return segment_geometry(config, output_vox=out)


class _PreActConv(nn.Sequential):
    """BN -> PReLU -> (dropout) -> conv, DeepMedic's layer order; the first layer is a bare conv."""

    def __init__(self, cin: int, cout: int, kernel, *, first: bool, dropout: float = 0.0):
        layers: list[nn.Module] = []
        if not first:
            layers += [nn.BatchNorm3d(cin), nn.PReLU(cin)]
        if dropout > 0:
            layers.append(nn.Dropout3d(dropout))
        layers.append(nn.Conv3d(cin, cout, kernel, bias=first))
        super().__init__(*layers)


def _center_crop(x: torch.Tensor, shape) -> torch.Tensor:
    starts = [(s - t) // 2 for s, t in zip(x.shape[2:], shape, strict=True)]
    return x[
        :,
        :,
        starts[0] : starts[0] + shape[0],
        starts[1] : starts[1] + shape[1],
        starts[2] : starts[2] + shape[2],
    ]


def _add_residual(out: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
    """DeepMedic residual: crop the earlier input to the output, zero-pad missing channels."""
    res = _center_crop(res, out.shape[2:])
    if res.shape[1] < out.shape[1]:
        return torch.cat([out[:, : res.shape[1]] + res, out[:, res.shape[1] :]], dim=1)
    return out + res[:, : out.shape[1]]


class Pathway(nn.Module):
    """8 valid convolutions with residual connections at layers 4, 6, 8."""

    def __init__(self, in_channels: int, widths, kernels):
        super().__init__()
        cins = [in_channels, *widths[:-1]]
        self.layers = nn.ModuleList(
            _PreActConv(ci, co, k, first=i == 0)
            for i, (ci, co, k) in enumerate(zip(cins, widths, kernels, strict=True))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            inputs.append(x)
            out = layer(x)
            if (i + 1) in RESIDUAL_LAYERS:
                out = _add_residual(out, inputs[i - 1])
            x = out
        return x


class FullyConnected(nn.Module):
    """FC layers as 1x1x1 convolutions (pre-activation, dropout), residual at FC layer 2."""

    def __init__(self, cin: int, hidden, n_classes: int, dropout: float):
        super().__init__()
        dims = [cin, *hidden, n_classes]
        self.layers = nn.ModuleList(
            _PreActConv(a, b, 1, first=False, dropout=dropout if i > 0 else 0.0)
            for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True))
        )
        self.layers[-1][-1].bias = nn.Parameter(torch.zeros(n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            out = layer(x)
            if i == 1 and out.shape[1] == x.shape[1]:
                out = out + x
            x = out
        return x


class DualPathwayVoxelClassifier(nn.Module):
    """Dual-pathway 3-D CNN: ``forward(x_high, x_low) -> logits``.

    Args (forward):
        x_high: ``(B, C_in, *geometry.input_vox)`` normalised CT segment.
        x_low: ``(B, C_in, *geometry.lowres_input_vox)`` strided (every ``factor``-th voxel)
            segment centred on ``x_high`` (see :func:`spinefx.datasets.voxel_sampling`).

    Returns:
        logits ``(B, n_classes, *geometry.output_vox)``; output voxel ``j`` is input voxel
        ``j + (receptive_field - 1) / 2`` of the high-res segment.
    """

    def __init__(self, config: VoxelClassifierConfig):
        super().__init__()
        self.config = config
        kernels = kernel_sizes(config.variant)
        widths = tuple(config.widths) or calibrate_widths(config)
        self.widths = widths
        self.normal = Pathway(config.in_channels, widths, kernels)
        self.subsampled = Pathway(config.in_channels, widths, kernels)
        self.fc = FullyConnected(2 * widths[-1], config.fc_widths, config.n_classes, config.dropout)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):  # DeepMedic init ["fanIn", 2] = He normal
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward(self, x_high: torch.Tensor, x_low: torch.Tensor) -> torch.Tensor:
        f = self.config.subsample_factor
        hi = self.normal(x_high)
        lo = self.subsampled(x_low)
        for axis in (2, 3, 4):  # upsample by repetition, as DeepMedic
            lo = lo.repeat_interleave(f, dim=axis)
        lo = _center_crop(lo, hi.shape[2:])
        return self.fc(torch.cat([hi, lo], dim=1))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _params_for(config: VoxelClassifierConfig, widths) -> int:
    kernels = kernel_sizes(config.variant)
    total = 0
    for _ in range(2):
        cin = config.in_channels
        for i, (w, k) in enumerate(zip(widths, kernels, strict=True)):
            total += cin * w * math.prod(k) + (w if i == 0 else 3 * cin)  # bias | BN(2)+PReLU(1)
            cin = w
    dims = [2 * widths[-1], *config.fc_widths, config.n_classes]
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        total += a * b + 3 * a
    return total + config.n_classes


def calibrate_widths(config: VoxelClassifierConfig) -> tuple[int, ...]:
    """Conv widths ``DEEPMEDIC_WIDTHS * s`` with ``s`` chosen so the model has ~target_params."""
    best = None
    for step in range(5, 400):
        widths = tuple(max(1, round(w * step / 100)) for w in DEEPMEDIC_WIDTHS)
        err = abs(_params_for(config, widths) - config.target_params)
        if best is None or err < best[0]:
            best = (err, widths)
    return best[1]


def build_voxel_classifier(config: VoxelClassifierConfig) -> DualPathwayVoxelClassifier:
    """Build the dual-pathway voxel classifier described by ``config``."""
    return DualPathwayVoxelClassifier(config)
