"""spinefx.preprocessing: orientation, resampling, intensity, spine frames and patches.

Every geometric step here is invertible: ``reorient`` back to the original codes,
``resample_like`` back onto the original grid, ``patch_map_to_scan`` from a patch to its scan.
"""

from spinefx.preprocessing.intensity import hu_to_unit, unit_to_hu
from spinefx.preprocessing.orientation import reorient
from spinefx.preprocessing.patch_files import patch_file_is_valid, save_patch
from spinefx.preprocessing.patches import (
    extract_patch,
    extract_vertebra_patches,
    out_of_view_fraction,
    patch_affine,
    patch_map_to_scan,
)
from spinefx.preprocessing.prepare import (
    MANIFEST_COLUMNS,
    PrepareConfig,
    PrepareResult,
    load_prepare_config,
    prepare_dataset,
)
from spinefx.preprocessing.resample import (
    crop_to,
    resample_like,
    resample_to_grid,
    resample_to_spacing,
)
from spinefx.preprocessing.sitk_bridge import image_to_sitk, sitk_to_image
from spinefx.preprocessing.spine import SpineCurve, VertebraFrame, frame_from_tangent, spine_frames

__all__ = [
    "crop_to",
    "MANIFEST_COLUMNS",
    "PrepareConfig",
    "PrepareResult",
    "load_prepare_config",
    "patch_file_is_valid",
    "prepare_dataset",
    "save_patch",
    "SpineCurve",
    "VertebraFrame",
    "extract_patch",
    "extract_vertebra_patches",
    "frame_from_tangent",
    "hu_to_unit",
    "image_to_sitk",
    "out_of_view_fraction",
    "patch_affine",
    "patch_map_to_scan",
    "reorient",
    "resample_like",
    "resample_to_grid",
    "resample_to_spacing",
    "sitk_to_image",
    "spine_frames",
    "unit_to_hu",
]
