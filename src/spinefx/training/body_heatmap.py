"""Training of the body-centre heatmap network (:mod:`spinefx.models.body_heatmap`).

Training data come from the training-data engine: CTs rendered from real vertebra masks
(:func:`spinefx.synthesis.mask_scan.render_ct`, a tissue draw per case) and procedural scans
(:func:`spinefx.synthesis.generate_dataset`); the targets are Gaussians at the masks' body
centroids (:func:`spinefx.morphometry.centroids.body_centroids`). Every case is cached on the
network's grid as ``cases/<name>.npz`` (written atomically, so an interrupted build resumes
where it stopped); the weights go to ``body_heatmap.pt`` with ``body_heatmap.json`` naming the
sources, their licences, seeds and steps.

Plain PyTorch: one small network, one loss, a fixed number of steps on two CPU cores; nothing
that Lightning's loop would add is needed here.
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from spinefx.image import Image
from spinefx.models.body_heatmap import HEATMAP_SIGMA_MM, RECORD_NAME, WEIGHTS_NAME
from spinefx.preprocessing.heatmap_grid import heatmap_grid, scale_hu

log = logging.getLogger(__name__)


@dataclass
class HeatmapRecipe:
    """What a heatmap network is trained on and for how long.

    Attributes:
        mask_subjects: real subjects (``subject_id`` of
            :func:`spinefx.synthesis.real_sources.find_real_subjects`) whose masks are
            rendered; ``None`` = every subject without a CT here (so that none of the real
            CTs that the benchmark scores is among them).
        ct_subjects: real subjects whose CTs (with their masks' body centres) are training
            cases themselves: real texture, which no rendering reproduces. Default none: the
            real CTs are what the benchmark scores, so a model that trains on some is scored
            only on the others (``bench_localisation.py`` skips the CTs a model saw).
        ct_repeats: each real CT counts this many times when a training case is drawn.
        shippable_only: render only masks (and train only on CTs) whose licence allows
            shipping the weights.
        draws_per_mask: tissue draws (rendered CTs) per mask.
        n_procedural: procedural scans.
        seed: of every draw.
        steps, batch, patch_vox, lr: the optimisation.
        loss: ``"focal"`` (CenterNet's penalty-reduced focal loss: sharp peaks) or
            ``"mse"`` (squared error weighted towards the bodies).
        focal_steps: after ``steps`` with ``loss``, this many more with the focal loss (its
            own learning-rate cycle): the squared error finds the bodies, the focal loss then
            sharpens the peaks; from scratch the focal loss alone is slow to find them.
        init: weights to start from (a fine-tuning); None = from scratch.
    """

    mask_subjects: list[str] | None = None
    ct_subjects: list[str] | None = None
    ct_repeats: int = 4
    shippable_only: bool = False
    draws_per_mask: int = 4
    n_procedural: int = 16
    seed: int = 0
    steps: int = 600
    batch: int = 4
    patch_vox: int = 48
    lr: float = 2e-3
    loss: str = "focal"
    focal_steps: int = 0
    init: str | None = None


def heatmap_target(grid: Image, centroids_mm: np.ndarray) -> np.ndarray:
    """The training target on ``grid``: the maximum over the body centres of a Gaussian of
    :data:`HEATMAP_SIGMA_MM` (world mm), 1 at each centre."""
    idx = np.indices(grid.shape).reshape(3, -1).T.astype(float)
    world = grid.voxel_to_world(idx)
    out = np.zeros(len(world), np.float32)
    for c in np.asarray(centroids_mm, float).reshape(-1, 3):
        d2 = ((world - c) ** 2).sum(axis=1)
        np.maximum(out, np.exp(-d2 / (2 * HEATMAP_SIGMA_MM**2)), out=out)
    return out.reshape(grid.shape)


def case_arrays(ct: Image, mask: Image) -> tuple[np.ndarray, np.ndarray]:
    """``(input, target)`` of one case on the network's grid (float16)."""
    from spinefx.morphometry.centroids import body_centroids

    grid = heatmap_grid(ct)
    centres = np.array(list(body_centroids(mask).values()), float).reshape(-1, 3)
    return (
        scale_hu(np.asarray(grid.data)).astype(np.float16),
        heatmap_target(grid, centres).astype(np.float16),
    )


def _save_case(path: Path, x: np.ndarray, t: np.ndarray, info: dict) -> None:

    from spinefx.atomic import write_bytes_atomic

    buf = io.BytesIO()
    np.savez_compressed(buf, x=x, t=t, info=json.dumps(info))
    write_bytes_atomic(path, buf.getvalue())


def build_cases(out: Path, recipe: HeatmapRecipe, real_root: Path | None) -> list[dict]:
    """Render and cache every training case of ``recipe`` under ``out/cases`` (cases already
    there are kept: a build resumes). Returns one ``{name, source, subject, licence,
    shippable}`` per case."""
    from spinefx.synthesis.dataset import case_rng
    from spinefx.synthesis.mask_render import crop_to_labels
    from spinefx.synthesis.mask_render_config import MaskRenderConfig
    from spinefx.synthesis.mask_scan import render_ct, sample_render_params
    from spinefx.synthesis.real_sources import find_real_subjects, load_real_mask

    folder = out / "cases"
    folder.mkdir(parents=True, exist_ok=True)
    made: list[dict] = []
    config = MaskRenderConfig()
    index = 0
    subjects = find_real_subjects(real_root) if real_root is not None else []
    unknown = set(recipe.ct_subjects or ()) - {s.subject_id for s in subjects if s.ct_scans}
    barred = [s.subject_id for s in subjects if s.subject_id in set(recipe.ct_subjects or ())
              and recipe.shippable_only and not s.shippable]  # fmt: skip
    if barred:  # named, but its licence forbids shipping: say so rather than leave it out
        from spinefx.errors import InputError

        raise InputError(
            f"the licence of {', '.join(barred)} does not allow shipping weights trained on it",
            path=real_root,
            fix="drop --shippable-only, or do not name it with --ct-subject",
        )
    if unknown:  # before any rendering
        from spinefx.errors import InputError

        raise InputError(
            f"no real CT of subject(s) {sorted(unknown)} in the real folder",
            path=real_root,
            fix="name subjects with a CT: "
            + ", ".join(sorted(s.subject_id for s in subjects if s.ct_scans)),
        )
    for subject in subjects:
        wanted = (
            not subject.ct_scans
            if recipe.mask_subjects is None
            else subject.subject_id in recipe.mask_subjects
        )
        if not wanted or (recipe.shippable_only and not subject.shippable):
            continue
        for scan in subject.scans:
            mask = None
            for draw in range(recipe.draws_per_mask):
                name = f"render-{scan.scan_id}-{draw}"
                info = {"name": name, "source": "mask_render", "subject": subject.subject_id,
                        "licence": subject.licence, "shippable": subject.shippable}  # fmt: skip
                path = folder / f"{name}.npz"
                index += 1
                if not path.exists():
                    if mask is None:
                        mask = crop_to_labels(load_real_mask(scan), margin_mm=60.0)
                    params = sample_render_params(case_rng(recipe.seed, index - 1), config)
                    ct, labels = render_ct(mask, params, grid=None)
                    x, t = case_arrays(ct, labels)
                    _save_case(path, x, t, info)
                    log.info("rendered %s", name)
                made.append(info)
    made += _real_ct_cases(folder, recipe, subjects)
    if recipe.n_procedural:
        made += _procedural_cases(folder, recipe)
    return made


def _real_ct_cases(folder: Path, recipe: HeatmapRecipe, subjects) -> list[dict]:
    from spinefx.synthesis.real_sources import load_real_pair

    wanted = set(recipe.ct_subjects or ())
    made = []
    for subject in subjects:
        if subject.subject_id not in wanted or (recipe.shippable_only and not subject.shippable):
            continue
        for scan in subject.ct_scans:
            name = f"realct-{scan.scan_id}"
            info = {"name": name, "source": "real_ct", "subject": subject.subject_id,
                    "licence": subject.licence, "shippable": subject.shippable}  # fmt: skip
            path = folder / f"{name}.npz"
            if not path.exists():
                ct, mask = load_real_pair(scan)
                x, t = case_arrays(ct, mask)
                _save_case(path, x, t, info)
                log.info("cached %s", name)
            made.append(info)
    return made


def _procedural_cases(folder: Path, recipe: HeatmapRecipe) -> list[dict]:
    import tempfile

    from spinefx.io import load_scan
    from spinefx.io.nifti import read_nifti
    from spinefx.synthesis import generate_dataset

    names = [f"procedural-{recipe.seed}-{i:03d}" for i in range(recipe.n_procedural)]
    info = {"source": "procedural", "subject": "", "licence": "generated", "shippable": True}
    if not all((folder / f"{n}.npz").exists() for n in names):
        with tempfile.TemporaryDirectory() as tmp:
            root = generate_dataset(Path(tmp) / "synth", n_scans=recipe.n_procedural,
                                    seed=10_000 + recipe.seed, preset="default")  # fmt: skip
            cts = sorted(root.glob("rawdata/*/*_ct.nii.gz"))
            for name, ct_path in zip(names, cts, strict=True):
                sub = ct_path.name.removesuffix("_ct.nii.gz")
                mask = read_nifti(root / "derivatives" / sub / f"{sub}_seg-vert_msk.nii.gz")
                x, t = case_arrays(load_scan(ct_path), mask)
                _save_case(folder / f"{name}.npz", x, t, {"name": name, **info})
    return [{"name": n, **info} for n in names]


def _crop(x: np.ndarray, t: np.ndarray, size: int, rng: np.random.Generator):
    """A ``size``-cube of the case (air/zero padded where the case is smaller): centred near a
    body centre two times in three, anywhere otherwise."""
    pad = [(max(0, (size - s + 1) // 2 + 1),) * 2 for s in x.shape]
    x = np.pad(x, pad, constant_values=-1.0)
    t = np.pad(t, pad)
    hot = np.argwhere(t > 0.9)
    if len(hot) and rng.random() < 2 / 3:
        c = hot[rng.integers(len(hot))] + rng.integers(-size // 3, size // 3 + 1, 3)
    else:
        c = np.array([rng.integers(0, s) for s in x.shape])
    lo = np.clip(c - size // 2, 0, np.array(x.shape) - size)
    sl = tuple(slice(a, a + size) for a in lo)
    return x[sl], t[sl]


def _augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Calibration drift (scale, offset), image noise up to ~60 HU, and one time in four a
    tight field of view (air outside a random box around the middle, as a VerSe crop padded
    for the network)."""
    x = x * rng.uniform(0.9, 1.1) + rng.uniform(-0.05, 0.05)
    x = x + rng.normal(0.0, rng.uniform(0.0, 0.06), x.shape).astype(np.float32)
    if rng.random() < 0.25:
        n = np.array(x.shape)
        half = (n * rng.uniform(0.3, 0.5, 3)).astype(int)
        lo, hi = n // 2 - half, n // 2 + half
        box = np.full(x.shape, True)
        box[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = False
        x = np.where(box, -1.0, x)
    return x.astype(np.float32)


def _loss(logits, target, kind: str):
    """``"focal"``: CenterNet's penalty-reduced focal loss (Zhou et al. 2019; positives are
    the voxels where the target is above 0.9), normalised by the number of positives;
    ``"mse"``: squared error weighted 1 + 20 * target."""
    import torch

    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    if kind == "mse":
        return ((p - target) ** 2 * (1.0 + 20.0 * target)).mean()
    pos = target > 0.9
    pos_loss = -(torch.log(p) * (1 - p) ** 2)[pos].sum()
    neg_loss = -(torch.log(1 - p) * p**2 * (1 - target) ** 4)[~pos].sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1)


def _optimise(net, arrays, recipe: HeatmapRecipe, kind: str, steps: int, rng) -> list[float]:
    """``steps`` AdamW steps with a one-cycle learning rate on random crops of ``arrays``."""
    import torch

    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps)
    net.train()
    losses: list[float] = []
    for step in range(steps):
        xs, ts = [], []
        for _ in range(recipe.batch):
            x, t = arrays[rng.integers(len(arrays))]
            x, t = _crop(x, t, recipe.patch_vox, rng)
            x = _augment(x, rng)
            if rng.random() < 0.5:  # left-right
                x, t = x[::-1], t[::-1]
            xs.append(x.copy())
            ts.append(t.copy())
        xb = torch.from_numpy(np.stack(xs)[:, None])
        tb = torch.from_numpy(np.stack(ts)[:, None])
        loss = _loss(net(xb), tb, kind)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            log.info("heatmap %s step %d/%d loss %.4f", kind, step, steps, np.mean(losses[-50:]))
    return losses


def train_heatmap(out: Path, recipe: HeatmapRecipe, real_root: Path | None) -> Path:
    """Build the cases and train; returns the weights file (``out/body_heatmap.pt``)."""
    import torch

    from spinefx.models.body_heatmap import build_heatmap_net

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    cases = build_cases(out, recipe, real_root)
    data_minutes = (time.perf_counter() - start) / 60
    if not cases:
        from spinefx.errors import InputError

        raise InputError(
            "the recipe gives no training case (no mask to render and no procedural scan)",
            fix="pass --real-data with masks, or --procedural N",
        )
    arrays = []
    for c in cases:
        with np.load(out / "cases" / f"{c['name']}.npz") as z:
            pair = (z["x"].astype(np.float32), z["t"].astype(np.float32))
        # a real CT is drawn more often (the same arrays, not copies)
        arrays += [pair] * (recipe.ct_repeats if c["source"] == "real_ct" else 1)
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    net = build_heatmap_net()
    if recipe.init:
        net.load_state_dict(torch.load(recipe.init, map_location="cpu", weights_only=True))
    losses = []
    t0 = time.perf_counter()
    stages = [(recipe.loss, recipe.steps)] + (
        [("focal", recipe.focal_steps)] if recipe.focal_steps else []
    )
    for kind, steps in stages:
        losses += _optimise(net, arrays, recipe, kind, steps, rng)
    weights = out / WEIGHTS_NAME

    from spinefx.atomic import write_bytes_atomic, write_text_atomic

    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    write_bytes_atomic(weights, buf.getvalue())
    meta = {
        "recipe": asdict(recipe),
        "cases": cases,
        "shippable": all(c["shippable"] for c in cases),
        "minutes": {
            "data": round(data_minutes, 2),
            "train": round((time.perf_counter() - t0) / 60, 2),
        },  # fmt: skip
        "final_loss": float(np.mean(losses[-50:])),
    }
    write_text_atomic(out / RECORD_NAME, json.dumps(meta, indent=1))
    return weights
