"""A few-minute CPU demo: train a small hybrid model on the shipped data subset, sample with DDIM."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hqdm.config import Config, apply_overrides, config_from_dict
from hqdm.train.sampling import sample_checkpoint
from hqdm.train.trainer import RunResult, train

__all__ = ["DEMO_CONFIG", "DemoResult", "demo_config", "run_demo"]

# Kept in sync with configs/demo.yaml by a test; built in so `hqdm demo` works from any directory.
DEMO_CONFIG: dict[str, Any] = {
    "model": {"name": "qvunet-1hq", "semantics": "paper", "in_channels": 1},
    "data": {"dataset": "embedded-fashion-mnist"},
    "diffusion": {"schedule": "cosine", "num_timesteps": 1000},
    "optim": {"lr": 1e-3, "betas": [0.9, 0.99], "eps": 1e-8},
    "training": {
        "batch_size": 32,
        "epochs": 100,  # an upper bound: the demo stops on --minutes / --steps first
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
class DemoResult:
    run: RunResult
    samples_png: Path
    samples_npz: Path


def demo_config(out: str | Path, overrides: Iterable[str] = ()) -> Config:
    raw = apply_overrides(DEMO_CONFIG, overrides)
    raw["output_dir"] = str(out)
    return config_from_dict(raw)


def run_demo(
    out: str | Path,
    *,
    minutes: float = 5.0,
    steps: int | None = None,
    overrides: Iterable[str] = (),
    progress: bool = True,
) -> DemoResult:
    """Train for ``minutes`` (or ``steps``), then draw a DDIM grid from the EMA weights."""
    cfg = demo_config(out, overrides)
    result = train(cfg, max_steps=steps, time_limit=minutes * 60.0, progress=progress)
    s = cfg.sampling
    samples = sample_checkpoint(
        result.run_dir,
        result.run_dir,
        num_images=s.num_images,
        sampler=s.sampler,
        steps=s.steps,
        eta=s.eta,
        seed=cfg.training.seed,
        progress=progress,
    )
    return DemoResult(result, samples.png, samples.npz)
