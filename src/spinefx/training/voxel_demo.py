"""A tiny voxel classifier trained on synthetic scans in a couple of CPU minutes (for demos)."""

from __future__ import annotations

from pathlib import Path


def train_voxel_demo(
    out_dir: str | Path, *, n_scans: int = 6, seed: int = 0, epochs: int = 3
) -> Path:
    """Synthesise ``n_scans`` small scans and train the ``cpu`` preset (2 mm voxels) on them.

    Args:
        out_dir: folder that receives ``data/`` (the synthetic dataset) and ``run/``.
        n_scans: synthetic scans (``small`` preset).
        seed: seed of the data and the training.
        epochs: training epochs.

    Returns:
        the run directory (usable by :func:`spinefx.detect_fractures`).
    """
    from spinefx.runs.configs import voxel_preset
    from spinefx.synthesis import generate_dataset
    from spinefx.training.voxel import train_voxel_run

    out = Path(out_dir)
    data = generate_dataset(out / "data", n_scans=n_scans, seed=seed, preset="small")
    config = voxel_preset("cpu", data=str(data), seed=seed, epochs=epochs)
    train_voxel_run(config, out / "run")
    return out / "run"
