"""Vertebral-body centre heatmap network: a small 3-D U-Net on a coarse RAS+ grid.

The network reads a CT on :func:`spinefx.preprocessing.heatmap_grid.heatmap_grid` (RAS+, HU
scaled by :func:`~spinefx.preprocessing.heatmap_grid.scale_hu`) and returns, per voxel, a
heatmap that is 1 at a vertebral body's centre and falls off as a Gaussian of
:data:`HEATMAP_SIGMA_MM` (the target of :func:`spinefx.training.body_heatmap.heatmap_target`).
Its peaks (:func:`spinefx.inference.body_heatmap.heatmap_peaks`) are the body centres that
:func:`spinefx.inference.ct_localisation.localise_spine` labels.

Why a network here at all: the anatomy-only localiser finds the body line from the deepest
solid bone, and on real CT that line leaves the bodies for the posterior elements where the
marrow is as dark as soft tissue (wide lumbar bodies with a thin shell) or for a bright aorta;
a network trained on CTs rendered from real vertebra masks sees a body as a body.

MONAI's ``BasicUNet`` is the network (a maintained implementation; nothing here is hand-written
but the target, the scaling and the peak finder).
"""

from __future__ import annotations

from pathlib import Path

#: spread of the target around each body centre, mm
HEATMAP_SIGMA_MM = 6.0
#: U-Net features (MONAI ``BasicUNet``: five levels and the last up-sampling)
FEATURES = (8, 16, 32, 64, 64, 8)
#: the network's input sides must be multiples of this (four poolings)
DIVISOR = 16
#: the weights file and, beside it, the record of what made them (recipe, cases, licences)
WEIGHTS_NAME = "body_heatmap.pt"
RECORD_NAME = "body_heatmap.json"


def build_heatmap_net():
    """The untrained network (``torch.nn.Module``; 1 channel in, 1 out)."""
    from monai.networks.nets import BasicUNet

    return BasicUNet(spatial_dims=3, in_channels=1, out_channels=1, features=FEATURES)


def read_heatmap_record(weights: str | Path) -> dict:
    """The record written beside heatmap weights (:data:`RECORD_NAME`): recipe, cases with
    their licences, ``shippable``; shipped weights add their sha256.

    Raises:
        InputError: the record is missing or unreadable.
    """
    import json

    from spinefx.errors import InputError

    path = Path(weights).with_name(RECORD_NAME)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"heatmap weights must come with their {RECORD_NAME}", path=path,
            fix="pass the body_heatmap.pt that 'spinefx train-localiser' wrote, in its folder",
        ) from None  # fmt: skip
    except (OSError, ValueError) as exc:  # truncated, not JSON, not text
        raise InputError(
            f"unreadable heatmap record ({type(exc).__name__})", path=path,
            fix="train the weights again with 'spinefx train-localiser'",
        ) from exc  # fmt: skip
    if not isinstance(record, dict) or not isinstance(record.get("cases"), list):
        raise InputError("not a heatmap record (no list of cases)", path=path,
                         fix="train the weights again with 'spinefx train-localiser'")  # fmt: skip
    return record


def load_heatmap_net(path: str | Path):
    """The network of a weights file written by
    :func:`spinefx.training.body_heatmap.train_heatmap` (the shipped ones:
    :func:`spinefx.runs.shipped.shipped_heatmap_weights`).

    Raises:
        InputError: the file is missing or is not heatmap weights.
    """
    import torch

    from spinefx.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(
            "no body-heatmap weights found", path=path,
            fix="train them with 'spinefx train-localiser --out DIR' and pass DIR/body_heatmap.pt "
            "(or add --install to make them the default)",
        )  # fmt: skip
    net = build_heatmap_net()
    try:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:  # a truncated file, another network's weights
        raise InputError(
            f"not body-heatmap weights ({type(exc).__name__}: {str(exc)[:200]})", path=path,
            fix="pass the body_heatmap.pt that 'spinefx train-localiser' wrote",
        ) from exc  # fmt: skip
    net.eval()
    return net
