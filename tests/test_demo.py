"""The demo's patch preview: patches drawn in the display convention (anterior on the left)."""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage

from spinefx.demo import write_patch_preview
from spinefx.image import Image
from spinefx.io import save_image


def test_patch_preview_puts_the_anterior_body_on_the_left(tmp_path):
    data = np.full((16, 16, 16), -250.0, np.float32)  # black at the preview's window
    data[6:10, 11:15, 5:11] = 500.0  # mid-grey block, anterior (high y) at the middle x
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-15.0, -15.0, 300.0)
    (tmp_path / "patches").mkdir()
    save_image(Image(data, affine), tmp_path / "patches" / "L1.nii.gz")
    (tmp_path / "manifest.csv").write_text(
        "case_id,level,genant_grade,path\ncase0001,L1,0,patches/L1.nii.gz\n"
    )
    png = np.asarray(PILImage.open(write_patch_preview(tmp_path, tmp_path / "p.png")))[..., :3]
    rgb = png.astype(int)
    grey = (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])
    block = grey & (np.abs(rgb[..., 0] - 128) < 10)  # the 500 HU block at (-250, 1250) HU
    dark = grey & (rgb[..., 0] < 5)  # the patch's soft tissue: the tile's extent
    _, block_cols = np.nonzero(block)
    _, tile_cols = np.nonzero(dark)
    assert block_cols.size > 20
    assert block_cols.mean() < (tile_cols.min() + tile_cols.max()) / 2  # left half of the tile
