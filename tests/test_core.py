import numpy as np
import pytest

from spinefx.conventions import genant_grade_from_height_loss, level_name, vertebra_label
from spinefx.errors import GeometryError, InputError
from spinefx.image import Image


def test_level_table_round_trips():
    for label in [*range(1, 26), 28]:
        assert vertebra_label(level_name(label)) == label
    assert level_name(20) == "L1" and level_name(28) == "T13" and level_name(19) == "T12"


def test_unknown_label_names_the_fix():
    with pytest.raises(InputError, match="VerSe numbering"):
        level_name(99)


@pytest.mark.parametrize(
    "loss,grade", [(0.1, 0), (0.2, 1), (0.24, 1), (0.25, 2), (0.39, 2), (0.4, 3)]
)
def test_genant_thresholds(loss, grade):
    assert genant_grade_from_height_loss(loss) == grade


def test_image_geometry():
    affine = np.diag([0.7, 0.7, 2.0, 1.0])
    affine[:3, 3] = [10, -5, 3]
    img = Image(np.zeros((4, 5, 6), np.int16), affine)
    assert np.allclose(img.spacing_mm, [0.7, 0.7, 2.0])
    assert img.orientation == "RAS"
    pts = np.array([[1.0, 2.0, 3.0], [0, 0, 0]])
    assert np.allclose(img.world_to_voxel(img.voxel_to_world(pts)), pts)
    assert img.contains_world(img.voxel_to_world([3, 4, 5]))
    assert not img.contains_world(img.voxel_to_world([3, 4, 7]))


def test_image_rejects_bad_geometry():
    with pytest.raises(GeometryError):
        Image(np.zeros((4, 4)), np.eye(4))
    with pytest.raises(GeometryError):
        Image(np.zeros((4, 4, 4)), np.zeros((4, 4)))


def test_atomic_write_leaves_no_partial_file_and_normal_permissions(tmp_path):
    import os

    from spinefx.atomic import atomic_path, write_text_atomic

    target = tmp_path / "out" / "a.nii.gz"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert not target.exists() and list(target.parent.iterdir()) == []
    write_text_atomic(target, "done")
    assert target.read_text() == "done"
    mask = os.umask(0)
    os.umask(mask)
    assert (target.stat().st_mode & 0o777) == (0o666 & ~mask)


@pytest.mark.parametrize(
    "package",
    ["spinefx", "spinefx.evaluation", "spinefx.training", "spinefx.interpretation"],
)
def test_every_public_name_resolves(package):
    import importlib

    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute"):
        module.not_a_public_name  # noqa: B018


def test_import_spinefx_is_light():
    import subprocess
    import sys

    code = "import sys, spinefx; print(sorted({'torch', 'monai', 'lightning'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
