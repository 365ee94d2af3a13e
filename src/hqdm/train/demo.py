"""``hqdm demo``: the first minute with hqdm.

By default the demo draws the same seeds from a shipped hybrid model and its classical twin and writes
one labelled side-by-side grid: real images in well under a minute, no training. ``train_demo`` is the
older demo: a small hybrid trained for a few minutes on the shipped data subset (it draws noise-like
images: minutes of CPU are far too few for a diffusion model), each run in a fresh folder.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from hqdm.config import Config, ConfigError, apply_overrides, config_from_dict
from hqdm.models.pretrained import read_pretrained_config, shipped_models
from hqdm.train.generate import SampleResult, load_pipeline, sample_to_folder
from hqdm.train.io import save_labelled_grids_png
from hqdm.train.trainer import RunResult, train

__all__ = [
    "COMPARED_MODELS",
    "DEMO_CONFIG",
    "ComparisonResult",
    "TrainingDemoResult",
    "compare_pretrained",
    "demo_config",
    "train_demo",
]

COMPARED_MODELS = ("fashion-mnist-1hq", "fashion-mnist-unet")  # a hybrid and its classical twin

# Kept in sync with configs/demo.yaml by a test; built in so `hqdm demo` works from any directory.
DEMO_CONFIG: dict[str, Any] = {
    "model": {"name": "qvunet-1hq", "semantics": "paper", "in_channels": 1},
    "data": {"dataset": "embedded-fashion-mnist"},
    "diffusion": {"schedule": "cosine", "num_timesteps": 1000},
    "optim": {"lr": 1e-3, "betas": [0.9, 0.99], "eps": 1e-8},
    "training": {
        "batch_size": 32,
        "epochs": 100,  # an upper bound: the demo stops on --train-minutes / --train-steps first
        "seed": 42,
        "grid_epochs": [],
        "checkpoint_every": 100,
        "keep_last": 2,
        "device": "auto",
        "log_every": 5,
    },
    "sampling": {"sampler": "ddim", "steps": 50, "eta": 0.0, "num_images": 36},
    "output_dir": "hqdm-demo",
}


@dataclass(frozen=True)
class ComparisonResult:
    png: Path
    labels: tuple[str, ...]
    num_images: int
    seconds: float


def _label(source: str) -> str:
    folder, config = read_pretrained_config(source)
    return f"{folder.name} ({config['name']})"


def compare_pretrained(
    out: str | Path,
    *,
    models: Iterable[str] | None = None,
    num_images: int = 16,
    steps: int = 50,
    eta: float = 1.0,
    seed: int = 0,
    device: torch.device | None = None,
) -> ComparisonResult:
    """Draw images ``0 .. num_images-1`` of ``seed`` from each pretrained model (DDIM, ``steps``, ``eta``)
    and write them side by side into ``out``/comparison.png, each grid under its model's name. By default
    the models are those of :data:`COMPARED_MODELS` that are shipped. Eta 1 (fresh noise at every step)
    draws the shipped 10-epoch models cleanly; eta 0 leaves their backgrounds speckled and costs ~29 FID
    (docs/RESULTS.md)."""
    models = tuple(m for m in COMPARED_MODELS if m in shipped_models()) if models is None else tuple(models)
    if not models:
        raise ConfigError(
            f"demo: none of {', '.join(COMPARED_MODELS)} is shipped with this install; train a model instead "
            "with `hqdm demo --train-minutes 5`"
        )
    missing = [m for m in models if m not in shipped_models() and not (Path(m) / "config.json").is_file()]
    if missing:
        raise ConfigError(
            f"demo: no pretrained model {', '.join(map(repr, missing))} (shipped: "
            f"{', '.join(shipped_models()) or 'none'}); train one instead with `hqdm demo --train-minutes 5`"
        )
    if num_images < 1:
        raise ConfigError(f"demo -n: the number of images must be positive, got {num_images}")
    started = time.perf_counter()
    panels = []
    for source in models:
        pipe, _ = load_pipeline(source, pretrained=True, sampler="ddim", steps=steps, eta=eta, device=device)
        panels.append((_label(source), pipe(num_images, seed=seed).numpy()))
    png = Path(out) / "comparison.png"
    save_labelled_grids_png(panels, png)
    return ComparisonResult(
        png, tuple(label for label, _ in panels), num_images, time.perf_counter() - started
    )


@dataclass(frozen=True)
class TrainingDemoResult:
    run: RunResult
    samples: SampleResult


def demo_config(out: str | Path, overrides: Iterable[str] = ()) -> Config:
    raw = apply_overrides(DEMO_CONFIG, overrides)
    raw["output_dir"] = str(out)
    return config_from_dict(raw)


def train_demo(
    out: str | Path,
    *,
    minutes: float = 5.0,
    steps: int | None = None,
    overrides: Iterable[str] = (),
    progress: bool = True,
) -> TrainingDemoResult:
    """Train for ``minutes`` (or ``steps``) in a fresh folder ``out``/train-<time>, then draw a DDIM grid
    from the EMA weights. Each call starts a new run, so the demo can always be run again."""
    run_dir = Path(out) / f"train-{datetime.now():%Y%m%d-%H%M%S}"
    while run_dir.exists():  # two demos started within one second
        run_dir = run_dir.with_name(run_dir.name + "-again")
    cfg = demo_config(run_dir, overrides)
    result = train(cfg, max_steps=steps, time_limit=minutes * 60.0, progress=progress)
    s = cfg.sampling
    samples = sample_to_folder(
        result.run_dir,
        result.run_dir,
        num_images=s.num_images,
        sampler=s.sampler,
        steps=s.steps,
        eta=s.eta,
        seed=cfg.training.seed,
        progress=progress,
    )
    return TrainingDemoResult(result, samples)
