"""The on-disk form of a prepared patch: uncompressed NIfTI, int16 HU, patch->world affine.

The manifest contract fixes the dtype to int16 whatever the value range, and resuming needs a
cheap header-only validity check of our own files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spinefx.image import Image

_INT16 = np.iinfo(np.int16)


def save_patch(patch: Image, path: str | Path) -> Path:
    """Write a HU patch atomically as int16 NIfTI (values rounded and clipped to int16)."""
    from spinefx.io import save_image

    data = np.clip(np.rint(patch.data), _INT16.min, _INT16.max).astype(np.int16)
    return save_image(patch.with_data(data), path, dtype=np.int16)


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
