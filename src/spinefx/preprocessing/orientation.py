"""Reorientation: an exact permutation/flip of the voxel axes, with the affine updated.

Built on nibabel's orientation helpers. No interpolation happens, so reorienting to any axis
codes and back to the original codes reproduces data and affine exactly.
"""

from __future__ import annotations

import nibabel.orientations as nio
import numpy as np

from spinefx.errors import InputError
from spinefx.image import Image


def reorient(image: Image, axcodes: str = "RAS") -> Image:
    """Permute/flip the voxel axes of ``image`` so that they point along ``axcodes``.

    Args:
        image: any 3-D image; its world geometry (RAS+ mm) is unchanged.
        axcodes: three nibabel axis codes, one of L/R, P/A, I/S per axis, e.g. ``"RAS"``,
            ``"PIR"``, ``"LPS"``.

    Returns:
        An image whose array axis ``n`` points towards ``axcodes[n]``. Each voxel keeps its
        world position (``voxel_to_world`` of corresponding voxels is identical). The inverse is
        ``reorient(result, image.orientation)``.

    Raises:
        InputError: if ``axcodes`` is not a valid set of three axis codes.
    """
    codes = _check_axcodes(axcodes)
    current = nio.io_orientation(image.affine)
    target = nio.axcodes2ornt(codes)
    transform = nio.ornt_transform(current, target)
    data = nio.apply_orientation(np.asarray(image.data), transform)
    affine = image.affine @ nio.inv_ornt_aff(transform, image.shape)
    return Image(data, affine, dict(image.meta))


def _check_axcodes(axcodes: str) -> tuple[str, str, str]:
    codes = tuple(str(axcodes).upper())
    pairs = [{"L", "R"}, {"P", "A"}, {"I", "S"}]
    used = sorted(next((i for i, p in enumerate(pairs) if c in p), -1) for c in codes)
    if len(codes) != 3 or used != [0, 1, 2]:
        raise InputError(
            f"invalid axis codes {axcodes!r}",
            fix="give one of L/R, one of P/A and one of I/S, e.g. 'RAS' or 'PIR'",
        )
    return codes  # type: ignore[return-value]
