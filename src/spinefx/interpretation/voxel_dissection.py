"""Network dissection of the voxel classifier (Nicolaes et al. 2019), both pathways.

The patch classifier is dissected on vertebra patches (:mod:`~spinefx.interpretation.runs`).
The voxel classifier has no patches: it labels every voxel from a pair of segments, a
full-resolution one (*normal* pathway) and a strided one with three times the field of view
(*subsampled* pathway). This module makes it dissectable with the same machinery
(:func:`~spinefx.interpretation.dissection.dissect`, thresholds ``T_k`` at the upper quantile,
``c_k`` over true positives, concept IoU):

* one sample per graded vertebra: the segment pair whose **output block** (``output_vox``
  voxels of the network view) is centred on the vertebral-body centroid;
* the sample's concept grid is that output block (``meta["grid_shape"]``, ``meta["affine"]``):
  the normal pathway's last layer covers it one activation per voxel, the subsampled
  pathway's last layer one activation per ``factor``³ block (exactly: the segment geometry
  aligns the two pathways), so concept masks land where the activations are;
* the per-sample prediction is the mean p(fractured) over the central cube of the block (the
  vertebra score of the paper's aggregation, unweighted).

:func:`dissect_voxel_run` returns one :class:`~spinefx.interpretation.dissection.Dissection`
per pathway; :func:`concept_comparison` compares the top fracture units' concept IoU with that
of random units (the question the concept atlas answers for the patch classifier).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from spinefx.errors import InputError

log = logging.getLogger(__name__)

#: pathway -> its last convolution (the layer dissected), as in ``DISSECTABLE_VOXEL_LAYERS``
PATHWAY_LAYERS: dict[str, str] = {"normal": "normal.layers.7", "subsampled": "subsampled.layers.7"}
#: output block edge (voxels of the network view): a multiple of the subsampling factor
DEFAULT_OUTPUT_VOX = 24
#: edge of the central cube whose mean p(fractured) is the sample's prediction
SCORE_CUBE_VOX = 5


class VertebraScore(nn.Module):
    """The voxel classifier as a per-sample classifier: logit of the central-cube p(fractured).

    The wrapped model is ``self.voxel``, so its layers are dissected as ``voxel.<name>``.
    """

    def __init__(self, model: nn.Module, *, cube_vox: int = SCORE_CUBE_VOX):
        super().__init__()
        from spinefx.models.voxel_classifier import VOXEL_CLASS_NAMES

        self.voxel = model
        self.cube_vox = int(cube_vox)
        self.channel = VOXEL_CLASS_NAMES.index("fractured")

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(self.voxel(high, low), dim=1)[:, self.channel]
        lo = [(s - self.cube_vox) // 2 for s in p.shape[1:]]
        cube = p[:, lo[0] : lo[0] + self.cube_vox, lo[1] : lo[1] + self.cube_vox]
        cube = cube[..., lo[2] : lo[2] + self.cube_vox]
        return torch.logit(cube.mean(dim=(1, 2, 3)).clamp(1e-6, 1 - 1e-6))


@dataclass(frozen=True)
class _Entry:
    case: int
    vertebra_label: int
    level: str
    centroid_mm: tuple[float, float, float]
    fractured: int


class VertebraSegments(torch.utils.data.Dataset):
    """One (high, low) segment pair per graded, metal-free vertebra of ``cases``.

    Items are ``((high (1, *in), low (1, *low)), label, meta)``; ``meta`` holds
    ``scan_path``, ``case_id``, ``vertebra_label``, ``level``, ``affine`` (world mm of the
    output block's voxels) and ``grid_shape`` (the block's shape). The network view of one
    scan is kept at a time, so iterate in order (the dissection's loaders do).
    """

    def __init__(self, cases, model_config, *, output_vox: int = DEFAULT_OUTPUT_VOX):
        from spinefx.models.voxel_classifier import segment_geometry

        self.cases = [c for c in cases if c.scan_path is not None]
        self.config = model_config
        self.geometry = segment_geometry(model_config, output_vox=output_vox)
        self.entries = [
            _Entry(i, v.vertebra_label, v.level, tuple(v.centroid_mm), int(v.genant_grade >= 1))
            for i, case in enumerate(self.cases)
            for v in case.vertebrae
            if v.centroid_mm is not None and v.genant_grade is not None and not v.foreign_material
        ]
        if not self.entries:
            raise InputError(
                "no graded vertebra with a centroid in these scans",
                fix="dissect on a dataset with centroids and Genant grades (e.g. `spinefx synth`)",
            )
        self._view: tuple[int, object, float] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def _network_view(self, case_index: int):
        if self._view is None or self._view[0] != case_index:
            from spinefx.datasets.voxel_sampling import border_intensity, prepare_voxel_input
            from spinefx.io import load_scan

            view = prepare_voxel_input(
                load_scan(self.cases[case_index].scan_path),
                spacing_mm=self.config.input_spacing_mm,
                normalisation=self.config.intensity_normalisation,
            ).image
            self._view = (case_index, view, border_intensity(np.asarray(view.data)))
        return self._view[1], self._view[2]

    def __getitem__(self, index: int):
        from spinefx.datasets.voxel_sampling import segment_pair

        entry = self.entries[index]
        view, pad = self._network_view(entry.case)
        out = np.asarray(self.geometry.output_vox)
        centre = np.rint(view.world_to_voxel(np.asarray(entry.centroid_mm))).astype(int)
        start = centre - out // 2
        high, low = segment_pair(np.asarray(view.data), start, self.geometry, pad_value=pad)
        shift = np.eye(4)
        shift[:3, 3] = start
        meta = {
            "scan_path": str(self.cases[entry.case].scan_path),
            "case_id": self.cases[entry.case].case_id,
            "vertebra_label": entry.vertebra_label,
            "level": entry.level,
            "affine": view.affine @ shift,
            "grid_shape": tuple(int(s) for s in out),
        }
        pair = (torch.from_numpy(high[None].copy()), torch.from_numpy(low[None].copy()))
        return pair, entry.fractured, meta


def _collate(samples):
    high = torch.stack([s[0][0] for s in samples]).float()
    low = torch.stack([s[0][1] for s in samples]).float()
    labels = torch.as_tensor([int(s[1]) for s in samples], dtype=torch.long)
    return (high, low), labels, [dict(s[2]) for s in samples]


def dissect_voxel_run(
    run_dir: str | Path,
    data: str | Path,
    *,
    pathways: tuple[str, ...] = ("normal", "subsampled"),
    quantile: float = 0.005,
    max_cases: int | None = None,
    batch_size: int = 8,
    output_vox: int = DEFAULT_OUTPUT_VOX,
) -> dict:
    """Dissect the last layer of each pathway of a voxel-classifier run.

    Args:
        run_dir: a voxel-classifier run.
        data: a dataset with centroids and grades (VerSe layout, BIDS-like or manifest); its
            VerSe derivative masks (vert, subreg, fxzone) define the concepts.
        pathways: ``normal`` and/or ``subsampled``.
        quantile: upper tail fraction of the thresholds (paper: 0.005).
        max_cases: use only the first scans (None: all).
        batch_size: vertebrae per forward pass.
        output_vox: output block edge (voxels of the network view).

    Returns:
        ``{"dissections": {pathway: Dissection}, "decision_threshold": t, "n_vertebrae": n}``.
    """
    from spinefx.interpretation.dissection import dissect
    from spinefx.io import load_dataset
    from spinefx.runs import load_trained

    unknown = set(pathways) - set(PATHWAY_LAYERS)
    if unknown:
        raise InputError(
            f"unknown pathways {sorted(unknown)}", fix=f"use {', '.join(PATHWAY_LAYERS)}"
        )
    run = load_trained(run_dir, expect="voxel")
    cases = load_dataset(data)
    cases = cases[:max_cases] if max_cases else cases
    dataset = VertebraSegments(cases, run.config.model, output_vox=output_vox)
    wrapper = VertebraScore(run.model).eval()
    threshold = run.threshold if run.threshold is not None else 0.5
    out = {}
    for pathway in pathways:
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=False, collate_fn=_collate
        )
        out[pathway] = dissect(
            wrapper,
            f"voxel.{PATHWAY_LAYERS[pathway]}",
            loader,
            quantile=quantile,
            decision_threshold=threshold,
        )
    return {"dissections": out, "decision_threshold": threshold, "n_vertebrae": len(dataset)}


def concept_comparison(
    dissection,
    concepts: tuple[str, ...],
    *,
    top: int = 10,
    samples_per_unit: int = 10,
    n_draws: int = 10_000,
    seed: int = 0,
    operating_point: str = "youden",
) -> dict:
    """Mean concept IoU of the ``top`` TP-correlated units against random unit sets.

    The TP set is taken at the operating point maximising Youden's J over the dissected
    samples (``operating_point="youden"``) or at the dissection's own decision threshold
    (``"threshold"``), since a briefly trained model may rarely cross 0.5.

    Returns:
        the comparison (:func:`~spinefx.interpretation.concepts.compare_top_vs_random`) with the unit scores, the ratio of top
        to random IoU, the operating probability and the sample groups.
    """
    from sklearn.metrics import roc_curve

    from spinefx.interpretation.concepts import compare_top_vs_random, unit_concept_ious
    from spinefx.interpretation.dissection import rank_units, sample_groups, unit_correlations

    labels, probabilities = dissection.labels, dissection.probabilities
    if operating_point == "youden" and len(np.unique(labels)) == 2:
        fpr, tpr, thr = roc_curve(labels, probabilities)
        cut = float(min(thr[int(np.argmax(tpr - fpr))], 1.0))
        predictions = (probabilities >= cut).astype(int)
    else:
        cut, predictions = float("nan"), dissection.predictions
    correlations = unit_correlations(dissection.enabled(), labels, predictions)
    ranks = rank_units(correlations["tp"])
    ious = unit_concept_ious(dissection, samples_per_unit=samples_per_unit)
    scores = np.array([np.mean([ious[k].get(c, 0.0) for c in concepts]) for k in sorted(ious)])
    result = compare_top_vs_random(
        scores, ranks, top=min(top, len(scores)), rng=np.random.default_rng(seed), n_draws=n_draws
    )
    random = result["random_mean_iou"]
    result.update(
        concepts=list(concepts),
        ratio_top_to_random=(result["top_mean_iou"] / random) if random > 0 else None,
        operating_probability=cut,
        groups={g: int(m.sum()) for g, m in sample_groups(labels, predictions).items()},
    )
    return result
