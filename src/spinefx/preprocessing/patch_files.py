"""The on-disk form of a prepared patch: uncompressed NIfTI, int16 HU, patch->world affine.

Written here rather than with :func:`spinefx.io.save_image` because the manifest contract fixes
the dtype to int16 whatever the value range (``save_image`` picks the smallest integer type),
and because resuming needs a cheap header-only validity check of our own files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spinefx.atomic import atomic_path
from spinefx.image import Image

_INT16 = np.iinfo(np.int16)


def save_patch(patch: Image, path: str | Path) -> Path:
    """Write a HU patch atomically as int16 NIfTI (values rounded and clipped to int16)."""
    import nibabel as nib

    data = np.clip(np.rint(patch.data), _INT16.min, _INT16.max).astype(np.int16)
    img = nib.Nifti1Image(data, patch.affine)
    img.set_qform(patch.affine, code=1)
    img.set_sform(patch.affine, code=1)
    img.header.set_xyzt_units("mm")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)


def patch_file_is_valid(path: str | Path, *, size_vox: int) -> bool:
    """Whether ``path`` is a complete int16 patch of ``size_vox`` voxels a side (header check)."""
    import nibabel as nib

    path = Path(path)
    try:
        img = nib.load(str(path))
        header = img.header
        complete = path.stat().st_size >= int(header["vox_offset"]) + 2 * int(size_vox) ** 3
        return (
            complete
            and tuple(img.shape) == (int(size_vox),) * 3
            and header.get_data_dtype() == np.dtype(np.int16)
        )
    except Exception:  # any unreadable file is simply "not valid": it gets recomputed
        return False
