"""Reproduce Chen et al. (2025, arXiv 2504.00034): classical vs quantum lightweight U-Net, Gaussian vs
quantum noise, one MNIST digit at a time from at most 100 training images (see docs/chen2025.md).

Layout of ``out_dir``::

    runs/<cell>/digit<d>/seed<k>/      training run (checkpoints, log.csv, loss.png)
    runs/<cell>/digit<d>/seed<k>/eval/ samples.png, samples.npz and evaluation.json of the final EMA model
    fid-cache/                         features of the real reference images (shared by all cells)
    table.md, table.csv                mean ± std over seeds per digit and cell; cells.csv holds every seed

Rerunning skips finished work: a complete run is not retrained (an interrupted one resumes from its last
checkpoint) and an evaluation whose JSON exists is read back.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from hqdm.config import Config, config_from_dict
from hqdm.data import load_dataset
from hqdm.diffusion import SamplingPipeline, make_noise_source, make_schedule
from hqdm.files import atomic_write_text
from hqdm.metrics import evaluate_images
from hqdm.train import latest_checkpoint, load_checkpoint_model, read_state, train
from hqdm.train.io import save_grid_png, save_samples_npz

__all__ = ["BUDGETS", "CELLS", "ChenBudget", "ChenCell", "cell_config", "reproduce_chen2025"]

BASE_SEED = 42  # seed index k trains with 42 + k and draws training subset k
QUANTUM_NOISE_OPTIONS = {"shots": 64, "n_qubits": 8, "n_layers": 1}
Log = Callable[[str], None]


@dataclass(frozen=True)
class ChenCell:
    key: str
    label: str
    quantum_model: bool
    noise: str


CELLS = (
    ChenCell("classical-gaussian", "Classical, Gaussian noise", False, "gaussian"),
    ChenCell("quantum-gaussian", "Quantum, Gaussian noise", True, "gaussian"),
    ChenCell("classical-quantum", "Classical, quantum noise", False, "quantum"),
    ChenCell("quantum-quantum", "Quantum, quantum noise", True, "quantum"),
)


@dataclass(frozen=True)
class ChenBudget:
    """Training length, diffusion length, sampling and evaluation shared by every cell."""

    name: str
    digits: tuple[int, ...]
    train_images: int  # per digit, drawn with subset_seed = seed index
    epochs: int
    batch_size: int
    num_timesteps: int
    quantum_model: str  # the registered lite-qunet semantics
    num_samples: int  # generated images per run
    num_real: int  # real test images of the digit as the reference (0: all of them)
    sampler: str
    steps: int
    eta: float
    metrics: tuple[str, ...]
    precision: str = "auto"  # training.precision (auto: bf16 where the hardware has it)


_SMALL = {"quantum_model": "lite-qunet-8q", "sampler": "ddim", "eta": 1.0}
BUDGETS = {
    "smoke": ChenBudget(
        "smoke", (0,), train_images=8, epochs=1, batch_size=4, num_timesteps=20, num_samples=4, num_real=16,
        steps=5, metrics=("ssim",), **_SMALL,
    ),
    # ~0.3 s per training step (1000 steps) and ~0.2 s per image of FID on a shared 2-core CPU: ~7 min per run
    "cpu": ChenBudget(
        "cpu", (0,), train_images=100, epochs=250, batch_size=32, num_timesteps=250, num_samples=100,
        num_real=500, steps=50, metrics=("fid", "ssim"), precision="fp32", **_SMALL,
    ),  # fp32: the committed table trained in float32 (tests/test_budgets_pinned.py)
    "paper": ChenBudget(
        "paper", tuple(range(10)), train_images=100, epochs=300, batch_size=32, num_timesteps=1000,
        quantum_model="lite-qunet", num_samples=1000, num_real=0, sampler="ddpm", steps=1000, eta=0.0,
        metrics=("fid", "ssim"),
    ),
}  # fmt: skip


def get_budget(budget: str | ChenBudget) -> ChenBudget:
    if isinstance(budget, ChenBudget):
        return budget
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
    return BUDGETS[budget]


def cell_config(
    cell: ChenCell,
    budget: ChenBudget,
    *,
    digit: int,
    seed_index: int,
    run_dir: Path,
    data_dir: str | Path | None,
    dataset: str = "mnist",
) -> Config:
    """The training config of one (cell, digit, seed) run."""
    raw: dict[str, Any] = {
        "model": {"name": budget.quantum_model if cell.quantum_model else "lite-unet", "in_channels": 1},
        "data": {
            "dataset": dataset,
            "data_dir": None if data_dir is None else str(data_dir),
            "classes": [digit],
            "subset": budget.train_images,
            "subset_seed": seed_index,
        },
        "diffusion": {
            "schedule": "small-data",
            "num_timesteps": budget.num_timesteps,
            "p2_gamma": 0.0,
            "noise": cell.noise,
            "noise_options": dict(QUANTUM_NOISE_OPTIONS) if cell.noise == "quantum" else {},
        },
        "optim": {"lr": 1e-3},
        "training": {
            "batch_size": budget.batch_size,
            "epochs": budget.epochs,
            "seed": BASE_SEED + seed_index,
            "grid_epochs": [],
            "checkpoint_every": 200,
            "keep_last": 1,
            "device": "cpu",
            "log_every": 10,
            "precision": budget.precision,
        },
        "sampling": {"sampler": "ddim", "steps": min(50, budget.num_timesteps), "eta": 1.0, "num_images": 16},
        "output_dir": str(run_dir),
    }
    return config_from_dict(raw)


def _train(cfg: Config, progress: bool, log: Log) -> Path:
    """Train (or resume, or skip when finished) and return the final checkpoint."""
    run_dir = Path(cfg.output_dir)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is not None and read_state(checkpoint)[0].epoch >= cfg.training.epochs:
        return checkpoint
    log(f"train {run_dir} ({'resume' if checkpoint else 'new'})")
    result = train(cfg, resume=checkpoint is not None, progress=progress)
    if result.final_checkpoint is None:
        raise RuntimeError(f"training {run_dir} produced no checkpoint")
    return result.final_checkpoint


def _real_images(
    dataset: str, split: str, digit: int, budget: ChenBudget, data_dir: str | Path | None
) -> torch.Tensor:
    """uint8 reference images of ``digit``: ``budget.num_real`` of them (picked with seed 0), or all."""
    real = load_dataset(dataset, split, data_dir=data_dir, classes=[digit])
    if budget.num_real and budget.num_real < len(real):
        real = load_dataset(dataset, split, data_dir=data_dir, classes=[digit], subset=budget.num_real)
    return real.images


def _generate(checkpoint: Path, cfg: Config, budget: ChenBudget, seed: int) -> torch.Tensor:
    """uint8 samples of the checkpoint's EMA model, drawn with the run's own noise source."""
    model, _ = load_checkpoint_model(checkpoint, device=torch.device("cpu"))
    d = cfg.diffusion
    pipe = SamplingPipeline(
        model,
        make_schedule(d.schedule, d.num_timesteps, **d.schedule_options),
        image_shape=(cfg.model.in_channels, 28, 28),
        sampler=budget.sampler,
        steps=budget.steps,
        eta=budget.eta,
        noise=make_noise_source(d.noise, **d.noise_options),
    )
    return pipe(budget.num_samples, seed=seed, batch_size=100)


def _evaluate(
    checkpoint: Path, cfg: Config, budget: ChenBudget, real: torch.Tensor, cache_dir: Path, log: Log
) -> dict[str, Any]:
    eval_dir = Path(cfg.output_dir) / "eval"
    record_path = eval_dir / "evaluation.json"
    if record_path.exists():
        return json.loads(record_path.read_text(encoding="utf-8"))
    log(f"evaluate {cfg.output_dir}")
    images = _generate(checkpoint, cfg, budget, seed=cfg.training.seed)
    save_samples_npz(images.numpy(), eval_dir / "samples.npz")
    save_grid_png(images[:64].numpy(), eval_dir / "samples.png")
    scores = evaluate_images(images, real, metrics=budget.metrics, cache_dir=cache_dir, progress=False)
    record = {"checkpoint": str(checkpoint), "budget": asdict(budget), **scores}
    atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
    return record


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(var)


def _write_tables(out_dir: Path, rows: list[dict[str, Any]], budget: ChenBudget, seeds: int) -> None:
    """cells.csv (every run), table.csv and table.md (mean ± sample std over seeds)."""
    atomic_write_text(out_dir / "cells.csv", _csv(rows))
    summary = []
    digits = sorted({r["digit"] for r in rows})
    for digit in digits:
        for cell in CELLS:
            runs = [r for r in rows if r["digit"] == digit and r["cell"] == cell.key]
            if not runs:
                continue
            entry: dict[str, Any] = {"digit": digit, "cell": cell.key, "seeds": len(runs)}
            for metric in budget.metrics:
                entry[f"{metric}_mean"], entry[f"{metric}_std"] = _mean_std([r[metric] for r in runs])
            summary.append(entry)
    atomic_write_text(out_dir / "table.csv", _csv(summary))
    header = ["digit", *(c.label for c in CELLS)]
    lines = [
        f"# Chen et al. (2025) reproduction, budget {budget.name!r}",
        "",
        f"Mean ± std over up to {seeds} seeds (the seed count per cell is in table.csv). "
        f"{budget.train_images} training images per digit, {budget.epochs} epochs, "
        f"T = {budget.num_timesteps} (small-data schedule), {budget.num_samples} samples per run "
        f"({budget.sampler}, {budget.steps} steps), reference: {budget.num_real or 'all'} test images "
        "of the digit.",
    ]
    for metric in budget.metrics:
        lines += [
            "",
            f"## {metric.upper()}",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for digit in digits:
            cells = []
            for cell in CELLS:
                found = [s for s in summary if s["digit"] == digit and s["cell"] == cell.key]
                cells.append(
                    f"{found[0][f'{metric}_mean']:.4g} ± {found[0][f'{metric}_std']:.2g}" if found else "-"
                )
            lines.append(f"| {digit} | " + " | ".join(cells) + " |")
    atomic_write_text(out_dir / "table.md", "\n".join(lines) + "\n")


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def reproduce_chen2025(
    out_dir: str | Path,
    *,
    data_dir: str | Path | None,
    seeds: int = 3,
    digits: Sequence[int] | None = None,
    budget: str | ChenBudget = "smoke",
    dataset: str = "mnist",
    cells: Sequence[str] | None = None,
    reference_split: str = "test",
    progress: bool = False,
    log: Log = print,
) -> Path:
    """Train, sample and evaluate every (digit, cell, seed) run; write the tables; return ``table.md``.

    ``digits`` defaults to the budget's; ``cells`` to all four keys of :data:`CELLS`; the real images
    that FID/SSIM compare against come from ``reference_split`` (the held-out test split). The tables are
    rewritten after every finished run, so they show partial results while the runner is still going.
    """
    chosen = get_budget(budget)
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    known = {c.key: c for c in CELLS}
    unknown = sorted(set(cells or ()) - set(known))
    if unknown:
        raise ValueError(f"unknown cell(s) {unknown}; choose from {', '.join(known)}")
    selected = [known[k] for k in cells] if cells else list(CELLS)
    out = Path(out_dir)
    rows: list[dict[str, Any]] = []
    for digit in digits if digits is not None else chosen.digits:
        real = _real_images(dataset, reference_split, digit, chosen, data_dir)
        for seed_index in range(seeds):
            for cell in selected:
                run_dir = out / "runs" / cell.key / f"digit{digit}" / f"seed{seed_index}"
                cfg = cell_config(
                    cell, chosen, digit=digit, seed_index=seed_index, run_dir=run_dir, data_dir=data_dir,
                    dataset=dataset,
                )  # fmt: skip
                checkpoint = _train(cfg, progress, log)
                record = _evaluate(checkpoint, cfg, chosen, real, out / "fid-cache", log)
                rows.append(
                    {"digit": digit, "cell": cell.key, "seed": seed_index}
                    | {m: record[m] for m in chosen.metrics}
                )
                _write_tables(out, rows, chosen, seeds)
    return out / "table.md"
