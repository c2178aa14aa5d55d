"""spinefx: vertebral fracture detection in CT that shows what its networks saw.

A flat public API; names are imported lazily on first use so ``import spinefx`` is cheap and
has no side effects. See ``__all__`` for what is public.
"""

from __future__ import annotations

from spinefx.lazy_exports import lazy_exports

__version__ = "0.1.0"

#: public name -> module that defines it. Each stage adds its own entries.
_EXPORTS: dict[str, str] = {
    # core
    "Image": "spinefx.image",
    "InputError": "spinefx.errors",
    "SpinefxError": "spinefx.errors",
    "level_name": "spinefx.conventions",
    "vertebra_label": "spinefx.conventions",
    "load_config": "spinefx.config",
    "save_config": "spinefx.config",
    # io (issue 2)
    "load_scan": "spinefx.io",
    "load_mask": "spinefx.io",
    "save_image": "spinefx.io",
    "load_dicom_series": "spinefx.io",
    "load_centroids": "spinefx.io",
    "save_centroids": "spinefx.io",
    "centroids_from_mask": "spinefx.io",
    "load_grade_table": "spinefx.io",
    "load_dataset": "spinefx.io",
    "scan_dataset": "spinefx.io",
    "describe_scan": "spinefx.io",
    # preprocessing (issue 2)
    "reorient": "spinefx.preprocessing",
    "resample_to_spacing": "spinefx.preprocessing",
    "resample_like": "spinefx.preprocessing",
    "resample_to_grid": "spinefx.preprocessing",
    "hu_to_unit": "spinefx.preprocessing",
    "unit_to_hu": "spinefx.preprocessing",
    "SpineCurve": "spinefx.preprocessing",
    "VertebraFrame": "spinefx.preprocessing",
    "spine_frames": "spinefx.preprocessing",
    "extract_patch": "spinefx.preprocessing",
    "extract_vertebra_patches": "spinefx.preprocessing",
    "patch_map_to_scan": "spinefx.preprocessing",
    "prepare_dataset": "spinefx.preprocessing",
    "PrepareResult": "spinefx.preprocessing",
    "MANIFEST_COLUMNS": "spinefx.preprocessing",
    # synthesis + morphometry (issue 3)
    "generate_case": "spinefx.synthesis",
    "generate_dataset": "spinefx.synthesis",
    "SynthesisConfig": "spinefx.synthesis",
    "SyntheticCase": "spinefx.synthesis",
    "synthesis_preset": "spinefx.synthesis",
    "measure_vertebrae": "spinefx.morphometry",
    "VertebraMorphometry": "spinefx.morphometry",
    # patch classifier (issue 4)
    "build_model": "spinefx.models",
    "PatchClassifierConfig": "spinefx.models",
    "DISSECTABLE_LAYERS": "spinefx.models",
    "load_training_config": "spinefx.runs",
    "train_patch_classifier": "spinefx.training",
    "evaluate_run": "spinefx.evaluation",
    "load_trained": "spinefx.runs",
    "shipped_run_dir": "spinefx.runs.shipped",
    "TrainedRun": "spinefx.runs",
    "load_preset": "spinefx.runs",
    "predict_vertebrae": "spinefx.inference",
    "predict_scan": "spinefx.inference",
    "VertebraResult": "spinefx.records",
    "run_demo_training": "spinefx.evaluation",
    # voxel classifier (issue 5)
    "VoxelClassifierConfig": "spinefx.models.voxel_classifier",
    "VoxelTrainingConfig": "spinefx.runs",
    "voxel_preset": "spinefx.runs",
    "train_voxel_run": "spinefx.training.voxel",
    "train_voxel_demo": "spinefx.training.voxel_demo",
    "ellipsoid_label_image": "spinefx.datasets.voxel_labels",
    "predict_voxel_maps": "spinefx.inference",
    "detect_fractures": "spinefx.inference.screening",
    "DetectionResult": "spinefx.inference.screening",
    "localise_vertebrae": "spinefx.inference.localisation",
    "crossvalidate_voxel": "spinefx.evaluation.crossval",
    # interpretation (issue 6)
    "dissect": "spinefx.interpretation",
    "dissect_run": "spinefx.interpretation",
    "relevance_for_input": "spinefx.interpretation",
    "grad_cam": "spinefx.interpretation",
    "load_atlas": "spinefx.interpretation",
    "save_atlas": "spinefx.interpretation",
    "set_unit_concept": "spinefx.interpretation",
    # reporting + app (issue 7)
    "load_model_run": "spinefx.reporting",
    "ScanWorkspace": "spinefx.reporting",
    "draft_findings": "spinefx.reporting",
    "build_html_report": "spinefx.reporting",
    "write_scan_report": "spinefx.reporting",
    "export_results": "spinefx.reporting",
    "create_app": "spinefx.app",
}

__all__ = sorted([*_EXPORTS, "__version__"])

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
