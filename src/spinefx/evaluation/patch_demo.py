"""Train + evaluate in one call (for ``spinefx demo`` and notebooks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_demo_training(
    prepared_dir: str | Path,
    run_dir: str | Path,
    *,
    preset: str = "cpu",
    max_epochs: int | None = None,
    seed: int = 0,
    trials: int = 1,
) -> dict[str, Any]:
    """Train the patch classifier on prepared data and evaluate it on the test split.

    Args:
        prepared_dir: output of ``spinefx prepare`` (patches at the preset's size/spacing).
        run_dir: run directory to create.
        preset: ``cpu`` (minutes on 2 cores) or ``paper``, or a YAML config path.
        max_epochs: overrides the preset's ``max_epochs`` (None keeps it).
        seed: base seed.
        trials: number of seeded trials.

    Returns:
        ``{"training": metrics.json content, "evaluation": evaluation_test.json content}``.
    """
    from spinefx.evaluation.patch_evaluation import evaluate_run
    from spinefx.runs.configs import load_training_config
    from spinefx.training.patch_training import train_patch_classifier

    config = load_training_config(preset)
    if max_epochs is not None:
        config = config.replace(max_epochs=int(max_epochs))
    training = train_patch_classifier(config, prepared_dir, run_dir, seed=seed, trials=trials)
    evaluation = evaluate_run(run_dir, split="test")
    return {"training": training, "evaluation": evaluation}
