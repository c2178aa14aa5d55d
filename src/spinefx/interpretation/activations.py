"""Recording the activations of one named layer of any ``torch.nn.Module``, streaming.

A dataset for dissection yields ``(input, label, meta)``: ``input`` a float tensor
``(C, X, Y, Z)`` on the input grid, ``label`` 0/1 (ground truth, 1 = fractured) and ``meta``
a dict that holds at least ``"affine"`` (the ``(4, 4)`` input-grid voxel -> world RAS+ mm map)
and, where known, ``case_id``, ``level``, ``path`` (patch NIfTI) and ``scan_path``.

The forward hook keeps only the current batch: memory does not grow with the dataset.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from spinefx.errors import InputError


def resolve_layer(model: nn.Module, layer: str) -> nn.Module:
    """Return the submodule of ``model`` named ``layer`` (dotted name, as ``named_modules``).

    Raises:
        InputError: naming the unknown layer and listing the available ones.
    """
    modules = dict(model.named_modules())
    if layer not in modules or layer == "":
        names = [name for name in modules if name]
        shown = ", ".join(names[:40]) + (" ..." if len(names) > 40 else "")
        raise InputError(
            f"the model has no layer named {layer!r}",
            fix=f"pass one of the model's module names: {shown}",
        )
    return modules[layer]


class LayerRecorder(contextlib.AbstractContextManager):
    """Forward hook on one named layer that keeps the latest output (tuple outputs: item 0).

    Use as a context manager; the hook is removed on exit. ``retain_grad=True`` also keeps
    the gradient of the loss with respect to that output (for Grad-CAM).
    """

    def __init__(self, model: nn.Module, layer: str, *, retain_grad: bool = False):
        self.module = resolve_layer(model, layer)
        self.layer = layer
        self.retain_grad = retain_grad
        self.output: torch.Tensor | None = None
        self.grad: torch.Tensor | None = None
        self._handle = None

    def _hook(self, _module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, (tuple, list)):
            output = output[0]
        if self.retain_grad and output.requires_grad:
            output.register_hook(self._grad_hook)
        self.output = output if self.retain_grad else output.detach()

    def _grad_hook(self, grad: torch.Tensor) -> None:
        self.grad = grad.detach()

    def __enter__(self) -> LayerRecorder:
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
        self._handle = None
        self.output = None
        self.grad = None


@dataclass
class ActivationBatch:
    """The layer output for one batch and what the model made of it.

    Attributes:
        activations: float32 tensor ``(B, K, *S)`` on the activation grid.
        labels: int64 ``(B,)`` ground truth (1 = positive / fractured).
        predictions: int64 ``(B,)`` predicted class (1 = positive).
        scores: float32 ``(B,)`` predicted probability of the positive class.
        metas: one metadata dict per sample.
        first_index: dataset index of the first sample of the batch (loader order).
        input_shape: spatial shape of the inputs ``(X, Y, Z)``.
    """

    activations: torch.Tensor
    labels: torch.Tensor
    predictions: torch.Tensor
    scores: torch.Tensor
    metas: list[dict] = field(default_factory=list)
    first_index: int = 0
    input_shape: tuple[int, ...] = ()


def positive_probability(output: torch.Tensor) -> torch.Tensor:
    """Probability of the positive class from a model output.

    Accepts one logit per sample (``(B,)`` or ``(B, 1)``, sigmoid) or two class logits
    ``(B, 2)`` (softmax, column 1 = positive).
    """
    if isinstance(output, (tuple, list)):
        output = output[0]
    if isinstance(output, dict):
        output = output.get("logits", next(iter(output.values())))
    output = output.detach().float()
    if output.ndim == 2 and output.shape[1] == 2:
        return torch.softmax(output, dim=1)[:, 1]
    return torch.sigmoid(output.reshape(output.shape[0], -1)[:, 0])


def split_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """Normalise a loader batch to ``(inputs, labels, metas)``.

    Accepts ``(inputs, labels, metas)`` with metas a list of dicts (:func:`collate_samples`)
    or a dict of lists (torch's default collate), and ``(inputs, labels)``.
    """
    if isinstance(batch, dict):
        inputs, labels, metas = batch["input"], batch["label"], batch.get("meta", [])
    else:
        inputs, labels = batch[0], batch[1]
        metas = batch[2] if len(batch) > 2 else []
    labels = torch.as_tensor(labels).reshape(-1).long()
    if isinstance(metas, dict):  # default collate: dict of per-key batches
        n = len(labels)
        metas = [{key: _item(value, i) for key, value in metas.items()} for i in range(n)]
    metas = list(metas) or [{} for _ in range(len(labels))]
    return inputs, labels, metas


def _item(value: Any, i: int) -> Any:
    item = value[i]
    return item.numpy() if isinstance(item, torch.Tensor) else item


def collate_samples(samples: list[tuple]) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """DataLoader ``collate_fn`` that stacks inputs and labels and keeps metas as dicts."""
    inputs = torch.stack([torch.as_tensor(s[0], dtype=torch.float32) for s in samples])
    labels = torch.as_tensor([int(s[1]) for s in samples], dtype=torch.long)
    metas = [dict(s[2]) if len(s) > 2 else {} for s in samples]
    return inputs, labels, metas


def iter_activations(
    model: nn.Module,
    layer: str,
    loader: Iterable,
    *,
    device: str | torch.device = "cpu",
    probability_fn: Callable[[Any], torch.Tensor] = positive_probability,
    threshold_probability: float = 0.5,
) -> Iterator[ActivationBatch]:
    """One pass over ``loader``: the model in eval mode, no gradients, one batch at a time.

    Yields:
        :class:`ActivationBatch` per loader batch, activations on the CPU as float32.
    """
    model.eval().to(device)
    index = 0
    with LayerRecorder(model, layer) as recorder, torch.no_grad():
        for batch in loader:
            inputs, labels, metas = split_batch(batch)
            if isinstance(inputs, (tuple, list)):  # a model of several inputs (voxel classifier)
                output = model(*(x.to(device, dtype=torch.float32) for x in inputs))
            else:
                output = model(inputs.to(device, dtype=torch.float32))
            if recorder.output is None:
                raise InputError(
                    f"layer {layer!r} produced no output during the forward pass",
                    fix="choose a layer that the model's forward() actually calls",
                )
            acts = recorder.output.float().cpu()
            if acts.ndim < 3:
                raise InputError(
                    f"layer {layer!r} output has shape {tuple(acts.shape)}; dissection needs "
                    "spatial maps (B, K, *S)",
                    fix="choose a convolutional layer",
                )
            prob = probability_fn(output).cpu()
            yield ActivationBatch(
                activations=acts,
                labels=labels,
                predictions=(prob > threshold_probability).long(),
                scores=prob.float(),
                metas=metas,
                first_index=index,
                input_shape=_concept_grid_shape(inputs, metas),
            )
            index += len(labels)


def _concept_grid_shape(inputs, metas: list[dict]) -> tuple[int, ...]:
    """The grid the layer's activations cover: ``meta["grid_shape"]`` when the samples name one
    (a model whose activations cover only part of its input, e.g. the voxel classifier's output
    block), else the input's spatial shape."""
    if metas and metas[0].get("grid_shape") is not None:
        return tuple(int(s) for s in metas[0]["grid_shape"])
    first = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
    return tuple(int(s) for s in first.shape[2:])


def as_numpy_affine(meta: dict, *, where: str = "sample") -> np.ndarray | None:
    """The input-grid affine of a sample's metadata as a ``(4, 4)`` float64 array, if any."""
    affine = meta.get("affine")
    if affine is None:
        return None
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise InputError(f"{where}: meta['affine'] has shape {affine.shape}, expected (4, 4)")
    return affine
