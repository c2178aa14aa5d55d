"""spinefx.inference: both methods on new scans (after training, before evaluation).

The patch classifier per vertebra (:mod:`~spinefx.inference.patch_classifier`), the voxel
classifier's tiled whole-scan maps (:mod:`~spinefx.inference.voxel_tiling`), screening of one
scan (:mod:`~spinefx.inference.screening`: maps -> patient and vertebrae), the aggregation of
a fracture map (:mod:`~spinefx.inference.aggregation`), automatic localisation
(:mod:`~spinefx.inference.localisation`) and the screening figure. Runs are loaded by
:func:`spinefx.runs.load_trained`. Names are imported lazily.
"""

from __future__ import annotations

from spinefx.lazy_exports import lazy_exports

_EXPORTS = {
    "patch_result": "spinefx.inference.patch_classifier",
    "predict_vertebrae": "spinefx.inference.patch_classifier",
    "predict_scan": "spinefx.inference.patch_classifier",
    "predict_unit_patches": "spinefx.inference.patch_classifier",
    "predict_voxel_maps": "spinefx.inference.voxel_tiling",
    "detect_fractures": "spinefx.inference.screening",
    "write_detection": "spinefx.inference.screening",
    "DetectionResult": "spinefx.inference.screening",
    "localise_vertebrae": "spinefx.inference.localisation",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
