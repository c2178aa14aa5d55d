"""End-to-end fracture screening of one scan with a trained voxel classifier.

``detect_fractures(run, scan, centroids=None)`` runs tiled inference on the 1 mm RAS view
of the scan, aggregates the fracture map to the patient (largest connected component at the
operating point) and to each vertebra (Gaussian-weighted cube mean around given or
automatically localised centroids), and returns probability maps in the scan's own geometry.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spinefx.conventions import level_name, spine_rank
from spinefx.errors import InputError
from spinefx.image import Image
from spinefx.inference.aggregation import fracture_regions, vertebra_scores
from spinefx.inference.localisation import check_localisation, localise_vertebrae
from spinefx.inference.voxel_tiling import DEFAULT_OUTPUT_TILE_VOX
from spinefx.preprocessing.metal import has_metal, metal_mask
from spinefx.records import RESULT_COLUMNS, VertebraResult
from spinefx.runs.shipped import model_identity
from spinefx.runs.trained import TrainedRun, load_trained

log = logging.getLogger(__name__)

#: Patient operating point used when the run directory does not hold one (t_p, t_n voxels).
DEFAULT_OPERATING_POINT = {"probability_threshold": 0.5, "noise_threshold_vox": 400}


@dataclass
class DetectionResult:
    """Result of :func:`detect_fractures`.

    Attributes:
        vertebrae: per-vertebra scores, cranial to caudal.
        patient_score: voxels (mm^3) of the largest fracture component above ``t_p``.
        patient_fractured: the patient answer: True (fracture), False (no fracture) or None
            (inconclusive or not assessable; ``patient_note`` says why). It is the paper's rule
            (``component_positive``) where the vertebrae agree with it; where the two levels
            disagree (a fracture region but no flagged vertebra, or a flagged vertebra but no
            region reaching ``t_n``), or no vertebra is assessable, it is None.
        component_positive: the paper's patient rule: the largest component reaches ``t_n``.
        patient_note: why the answer is inconclusive, or where the fracture regions are.
        fracture_regions: components reaching ``t_n``, largest first: ``{"volume_mm3",
            "vertebrae"`` (levels whose body centre lies inside), ``"nearest"`` (level of
            the nearest body centre), ``"centre_mm"}``.
        operating_point: ``{"probability_threshold", "noise_threshold_vox"}`` used.
        probability_maps: class name -> probability ``Image`` on the original scan grid.
        network_view: the 1 mm RAS HU image the network saw (for figures).
        fracture_map_1mm: p(fracture) on that 1 mm grid.
        flag_note: why vertebrae are not flagged ("" when the run has an operating point).
        model: which model answered (:func:`model_identity`): run, weights checksum,
            whether they are the shipped default, what it was trained on.
        scan: the scan's source (file or DICOM folder), as every output names it.
        roi_fraction: share of the network's grid inside the screened spine region.
    """

    vertebrae: list[VertebraResult]
    patient_score: float
    patient_fractured: bool | None
    operating_point: dict
    probability_maps: dict[str, Image] = field(repr=False)
    network_view: Image = field(repr=False)
    fracture_map_1mm: Image = field(repr=False)
    flag_note: str = ""
    model: dict = field(default_factory=dict)
    scan: str = ""
    roi_fraction: float = 1.0
    localisation: dict = field(default_factory=dict)
    component_positive: bool = False
    patient_note: str = ""
    fracture_regions: list[dict] = field(default_factory=list)

    @property
    def patient_state(self) -> str:
        """``FRACTURE``, ``no fracture``, ``INCONCLUSIVE`` or ``NOT ASSESSABLE`` (no vertebra
        could be assessed), as the CLI prints it."""
        if self.patient_fractured is None:
            return (
                "NOT ASSESSABLE"
                if self.patient_note.startswith("not assessable")
                else "INCONCLUSIVE"
            )
        return "FRACTURE" if self.patient_fractured else "no fracture"

    @property
    def fracture_threshold(self) -> float | None:
        """``t_p`` of the run's operating point; None when the run has none (nothing flagged)."""
        if self.flag_note:
            return None
        return float(self.operating_point["probability_threshold"])

    @property
    def fracture_min_mm3(self) -> float:
        """The noise threshold ``t_n`` as a volume (mm³): fracture components smaller than
        this are noise in the patient decision, and the fracture SEG leaves them out too."""
        voxel_mm3 = float(np.prod(self.fracture_map_1mm.spacing_mm))
        return float(self.operating_point["noise_threshold_vox"]) * voxel_mm3


#: the automatic localisers (see :func:`detect_fractures`)
LOCALISERS = ("anatomy", "heatmap", "network")


def detect_fractures(
    run: TrainedRun | str | Path,
    scan: Image | str | Path,
    centroids: dict[int, np.ndarray] | None = None,
    *,
    cube_size_vox: int = 10,
    output_tile_vox: int = DEFAULT_OUTPUT_TILE_VOX,
    spine_roi: bool = True,
    show_progress: bool = True,
    localiser: str = "anatomy",
    heatmap_weights: str | Path | None = None,
) -> DetectionResult:
    """Screen one CT for vertebral fractures with a trained voxel classifier.

    Args:
        run: a loaded voxel-classifier run (:func:`spinefx.runs.load_trained`) or its folder
            (the same argument order as the patch classifier's ``predict_vertebrae``).
        scan: CT ``Image`` in HU, or a NIfTI file / DICOM folder path.
        centroids: VerSe label -> world RAS+ mm; None = localise automatically (``localiser``).
        cube_size_vox: cube edge of the vertebra-level aggregation (1 mm voxels).
        output_tile_vox: inference tile edge.
        spine_roi: run the network only inside the spine region found by a cheap pass
            (a tube around the centroids when given, else near bone; see
            :mod:`spinefx.inference.spine_roi`); the maps are background outside it, and
            identical to the whole-volume result inside it. False runs every tissue tile.
        show_progress: progress bar over tiles.
        localiser: without centroids, ``"anatomy"`` (bone, bodies and discs on the CT, levels
            from the sacrum or marked uncertain: :mod:`spinefx.inference.ct_localisation`;
            it runs first, so the network screens only around the bodies it found) or
            ``"network"`` (components of the network's own vertebra map, levels from the
            spacing profile: :mod:`spinefx.inference.localisation`), or ``"heatmap"`` (the
            bodies from the body-centre heatmap network, the sacrum and levels from the
            anatomy: :func:`spinefx.inference.ct_localisation.localise_spine`).
        heatmap_weights: the heatmap network's weights (``"heatmap"``); None = shipped.

    Returns:
        :class:`DetectionResult`.
    """
    from spinefx.datasets.voxel_sampling import prepare_voxel_input
    from spinefx.inference.voxel_tiling import to_original_geometry

    if not isinstance(scan, Image):
        from spinefx.io import load_scan

        scan = load_scan(scan)
    if not isinstance(run, TrainedRun) or run.kind != "voxel":
        run = load_trained(run.run_dir if isinstance(run, TrainedRun) else run, expect="voxel")
    if localiser not in LOCALISERS:
        raise InputError(
            f"unknown localiser {localiser!r}", fix="use one of " + ", ".join(LOCALISERS)
        )
    source, level_notes, localisation = "given", {}, {}
    if centroids is None and localiser in ("anatomy", "heatmap"):
        from spinefx.inference.ct_localisation import automatic_centroids

        body_net = None
        if localiser == "heatmap":
            from spinefx.models.body_heatmap import load_heatmap_net
            from spinefx.runs.shipped import shipped_heatmap_weights

            body_net = load_heatmap_net(heatmap_weights or shipped_heatmap_weights())
        centroids, level_notes, localisation = automatic_centroids(scan, body_net=body_net)
        source = "automatic"
    model = run.model
    view = prepare_voxel_input(
        scan,
        spacing_mm=model.config.input_spacing_mm,
        normalisation=model.config.intensity_normalisation,
    )
    roi = None
    if spine_roi:
        from spinefx.inference.spine_roi import spine_region

        roi = spine_region(view.hu_image(), centroids or None)
    maps_1mm = _ensemble_maps(run, view, roi, output_tile_vox, show_progress)
    frac = maps_1mm["fractured"]
    hu = view.hu_image()
    op = {**DEFAULT_OPERATING_POINT, **(run.operating_point or {})}
    # fracture voxels around metal are undefined (instrumented vertebrae were never labelled)
    near_metal = metal_mask(scan, like=frac)
    patient_map = np.where(near_metal, 0.0, frac.data) if near_metal.any() else frac.data
    if centroids is None:
        vert = frac.with_data(maps_1mm["normal"].data + frac.data)
        centroids = localise_vertebrae(vert)
        check_localisation(centroids)
        source = "automatic"
        localisation = {"localiser": "network", "anchor": "profile",
                        "note": "levels from the spacing profile of the network's bodies"}  # fmt: skip
        level_notes = dict.fromkeys(centroids, "level uncertain (spacing profile)")
    scores = vertebra_scores(frac, centroids, cube_size_vox=cube_size_vox)
    vertebrae = _vertebra_results(scan, centroids, scores, run, source, level_notes)
    regions = fracture_regions(
        frac.with_data(patient_map), centroids, probability_threshold=op["probability_threshold"]
    )
    largest = regions[0].voxels if regions else 0
    component_positive = largest >= max(op["noise_threshold_vox"], 1)
    voxel_mm3 = float(np.prod(frac.spacing_mm))
    found = [
        _region_row(r, centroids, voxel_mm3)
        for r in regions
        if r.voxels >= max(op["noise_threshold_vox"], 1)
    ]
    fractured, patient_note = _patient_answer(
        component_positive, vertebrae, found, op, checked=not run.operating_point_note
    )
    return DetectionResult(
        vertebrae,
        float(largest * voxel_mm3),
        fractured,
        op,
        to_original_geometry(maps_1mm, scan),
        hu,
        frac,
        flag_note=run.operating_point_note,
        model=model_identity(run),
        scan=str(scan.meta.get("source", "")),
        roi_fraction=1.0 if roi is None else float(roi.mean()),
        localisation=localisation,
        component_positive=bool(component_positive),
        patient_note=patient_note,
        fracture_regions=found,
    )


def _region_row(region, centroids, voxel_mm3: float) -> dict:
    """A fracture region as ``patient.json`` lists it: volume, levels inside, nearest level."""
    centre = np.asarray(region.centre_mm)
    nearest = min(centroids, key=lambda k: np.linalg.norm(centre - centroids[k]), default=None)
    return {
        "volume_mm3": round(region.voxels * voxel_mm3, 1),
        "vertebrae": [level_name(k) for k in region.vertebrae],
        "nearest": level_name(nearest) if nearest is not None else "",
        "centre_mm": [round(v, 1) for v in region.centre_mm],
    }


def _where(row: dict) -> str:
    levels = row["vertebrae"]
    if len(levels) >= 2:  # no training label does this (aggregation's module docstring)
        return f"across {levels[0]}-{levels[-1]}"
    return f"at {levels[0]}" if levels else f"near {row['nearest'] or 'no vertebra'}"


def _patient_answer(
    component_positive: bool, vertebrae, regions: list[dict], op: dict, *, checked: bool
) -> tuple[bool | None, str]:
    """The patient answer and its note.

    The paper decides a patient by its largest fracture component alone. A screening answer
    has to point at a vertebra a reader can check, so where the patient rule and the
    vertebra flags disagree, the answer is inconclusive and the note names what to look at
    (our rule; the paper's decision stays in ``component_positive``). Without an operating
    point (``checked`` False) no vertebra is flagged and the paper's rule stands alone.
    """
    where = "; ".join(f"{r['volume_mm3'] / 1000:.1f} cm3 {_where(r)}" for r in regions)
    if any(len(r["vertebrae"]) >= 2 for r in regions):
        where += (
            " (a region running across vertebrae is unlike every training label, one per "
            "vertebra: the model is likely outside what it knows on this scan)"
        )
    if vertebrae and not any(v.assessable for v in vertebrae):
        return None, "not assessable: no vertebra in this scan could be assessed"
    if not checked:
        return bool(component_positive), (f"fracture region: {where}" if regions else "")
    flagged = [v.level for v in vertebrae if v.flagged]
    if component_positive and flagged:
        return True, f"fracture region: {where}; flagged: {', '.join(flagged)}"
    if component_positive:
        return None, (
            f"inconclusive: a fracture region ({where}) passes the patient threshold but no "
            "vertebra reaches the vertebra threshold; check that region on the images"
        )
    if flagged:
        min_mm3 = float(op["noise_threshold_vox"])
        return None, (
            f"inconclusive: {', '.join(flagged)} reach the vertebra threshold but no fracture "
            f"region reaches the patient threshold ({min_mm3:.0f} voxels); check "
            f"{', '.join(flagged)} on the images"
        )
    return False, ""


def _ensemble_maps(run: TrainedRun, view, roi, output_tile_vox: int, show_progress: bool):
    """Every trial's maps on the network grid, combined by the run's ensemble rule."""
    from spinefx.inference.voxel_tiling import predict_network_view

    per_trial = [
        predict_network_view(
            m, view, output_tile_vox=output_tile_vox, roi_mask=roi, show_progress=show_progress
        )
        for m in run.models
    ]
    return {  # one trial: its maps
        name: img.with_data(run.ensemble([t[name].data for t in per_trial]).astype(np.float32))
        for name, img in per_trial[0].items()
    }


def _vertebra_results(
    scan: Image, centroids, scores, run: TrainedRun, source: str, level_notes=None
) -> list[VertebraResult]:
    """Per vertebra, cranial first: score, flag at the run's cut, not-assessable reasons
    (and, for automatic localisation, whether the level is uncertain)."""
    cut = run.threshold if run.threshold is not None and np.isfinite(run.threshold) else None
    vertebrae = []
    for lab in sorted(centroids, key=spine_rank):
        metal = has_metal(scan, centroids[lab])
        score = scores[lab]
        scored = np.isfinite(score)
        if metal:
            note = "metal (screws): not assessable"
        elif not scored:
            note = "outside the scan: not assessable"
        else:
            note = run.operating_point_note and "not flagged: no operating point"
        level = (level_notes or {}).get(lab, "")
        note = "; ".join(part for part in (note, level) if part)
        vertebrae.append(
            VertebraResult(
                vertebra_label=int(lab),
                probability=score,
                flagged=None if metal or cut is None or not scored else bool(score >= cut),
                centroid_mm=tuple(float(v) for v in centroids[lab]),  # type: ignore[arg-type]
                method="voxel",
                assessable=not metal and scored,
                note=note,
                centroid_source=source,
            )
        )
    return vertebrae


def write_detection(
    result: DetectionResult, out_dir: str | Path, *, morphometry: dict[int, dict] | None = None
) -> dict[str, Path]:
    """Write ``vertebrae.csv``, ``patient.json``, ``prob_<class>.nii.gz`` and ``midsagittal.png``.

    ``morphometry`` (:func:`spinefx.morphometry.morphometry_columns` of the vertebra mask)
    adds the heights and the morphometric grade beside each probability in ``vertebrae.csv``.

    Returns:
        name -> path of every file written (atomically).
    """
    import pandas as pd

    from spinefx.atomic import atomic_path, write_text_atomic
    from spinefx.inference.figures import midsagittal_figure
    from spinefx.io import save_probability_map

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    from spinefx.runs.shipped import provenance_columns

    table = pd.DataFrame([v.row() for v in result.vertebrae], columns=list(RESULT_COLUMNS))
    if morphometry is not None:  # the mask's heights and grade beside each probability
        from spinefx.morphometry import with_morphometry

        table = pd.DataFrame(with_morphometry(table.to_dict("records"), morphometry))
    for name, value in provenance_columns(result.scan, result.model).items():
        table[name] = value
    paths["vertebrae"] = out / "vertebrae.csv"
    write_text_atomic(paths["vertebrae"], table.to_csv(index=False))
    summary = {
        "scan": result.scan,
        "patient_score_mm3": result.patient_score,
        "patient_fractured": result.patient_fractured,
        "patient_state": result.patient_state,
        "patient_note": result.patient_note,
        "component_positive": result.component_positive,
        "fracture_regions": result.fracture_regions,
        "operating_point": result.operating_point,
        "vertebrae_flagged": not result.flag_note,
        "flag_note": result.flag_note,
        "n_vertebrae": len(result.vertebrae),
        "screened_fraction": round(result.roi_fraction, 4),
        "localisation": result.localisation or {"localiser": "given"},
        "model": result.model,
    }
    paths["patient"] = out / "patient.json"
    write_text_atomic(paths["patient"], json.dumps(summary, indent=2))
    from concurrent.futures import ThreadPoolExecutor

    # the maps' quantising and gzip release the GIL: two at a time on two cores
    with ThreadPoolExecutor(max_workers=2) as pool:
        written = {
            name: pool.submit(save_probability_map, img, out / f"prob_{name}.nii.gz")
            for name, img in result.probability_maps.items()
        }
        for name, job in written.items():
            paths[f"prob_{name}"] = job.result()
    paths["figure"] = out / "midsagittal.png"
    fig = midsagittal_figure(result)
    with atomic_path(paths["figure"]) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths
