"""The long-budget study: the paper's early-training claims tested with full data, paired seeds, controls.

One cell is one (model, seed) run of the paper's recipe on a dataset's full training split. As it trains,
the run keeps the EMA and online weights of every evaluation epoch's end-of-epoch checkpoint under
``epochs/epoch_XXX``; once trained, it scores FID/KID of each kept epoch's EMA samples (of the online
weights' samples with ``use_ema=False``) against the dataset's test split, the last epoch first. Seed
``k`` fixes the initial weights, the data order and the sampling noise, so two models with the same seed
are paired.
Rerunning skips finished work: an evaluated epoch is read back, a kept epoch is evaluated without
retraining, an interrupted run resumes from its newest checkpoint.

Layout of ``out_dir`` (``results/study-<dataset>/`` from the command line)::

    runs/<model>/seed<k>/                    the training run: log.csv, loss.png, samples/epoch_XXX.png
    runs/<model>/seed<k>/epochs/epoch_XXX/   EMA and online weights, state and config of an evaluated epoch
    runs/<model>/seed<k>/eval/epoch_XXX/     evaluation.json and evaluation.md of the EMA weights
    runs/<model>/seed<k>/eval-online/epoch_XXX/  the same of the online weights
    metrics.csv                              one row per evaluated (weights, model, seed, epoch)
    report.md, fid_vs_epoch.png              mean ± std per model and epoch, paired differences to the
                                             U-Net with 95% intervals (hqdm.experiments.study_report)

Training checkpoints (with optimiser states) stay out of git, so a run's training must finish within one
session; its evaluations may follow later from the kept EMA weights (``train_only`` trains every cell and
keeps its epochs without evaluating; a later run without it evaluates them). Cells are independent: the
command line's ``--workers`` runs several at once as separate processes
(:mod:`hqdm.experiments.parallel_cells`).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from hqdm.config import Config, ConfigError, config_from_dict
from hqdm.data import load_dataset
from hqdm.diffusion import sampler_label
from hqdm.experiments.evaluate_checkpoint import (
    EVALUATION_JSON,
    EvalSettings,
    evaluate_checkpoint,
    sampled_weights,
    stored_settings,
    weights_label,
)
from hqdm.experiments.study_report import write_report
from hqdm.files import atomic_write_text
from hqdm.metrics.cache import real_features
from hqdm.metrics.inception import FIDInceptionFeatures
from hqdm.train import latest_checkpoint, read_state, train
from hqdm.train.setup import ModelFactory, default_model_factory, load_training_images, resolve_device

__all__ = ["StudySettings", "cache_test_features", "finish_study", "run_study", "study_config"]

# the EMA weights are what the evaluations sample (the paper's recipe); the online weights beside them show
# what the EMA's long average costs at that epoch (``hqdm eps-error``, docs/RESULTS.md); ~4 MB in all
KEPT_FILES = ("ema.safetensors", "model.safetensors", "state.json", "config.json")
METRICS_CSV = "metrics.csv"
EVAL_FOLDERS = {"ema": "eval", "online": "eval-online"}  # under runs/<model>/seed<k>/, by sampled weights
Log = Callable[[str], None]


@dataclass(frozen=True)
class StudySettings:
    """The study protocol (docs/RESULTS.md, "The long-budget study"); each field is a command option."""

    epochs: int = 10
    eval_epochs: tuple[int, ...] = (1, 2, 5, 10)
    grid_epochs: tuple[int, ...] = (1, 5, 10)
    batch_size: int = 128
    precision: str = "bf16"  # training and sampling precision of the classical layers
    use_ema: bool = True  # the evaluations sample the EMA weights (the paper's); False: the online weights
    train_subset: int | None = None  # None: the whole training split (tests use a few images)
    evaluation: EvalSettings = field(
        default_factory=lambda: EvalSettings(
            num_samples=2000, sampler="ddim", steps=100, metrics=("fid", "kid"), batch_size=250
        )
    )

    def __post_init__(self) -> None:
        bad = [e for e in (*self.eval_epochs, *self.grid_epochs) if not 1 <= e <= self.epochs]
        if bad:
            raise ConfigError(f"--eval-epochs/--grid-epochs: epochs {bad} are outside 1..{self.epochs}")
        if self.epochs not in self.eval_epochs:  # training stops at the last evaluated epoch
            raise ConfigError(f"--eval-epochs: must include the last epoch ({self.epochs})")


def study_config(
    dataset: str, model: str, seed: int, run_dir: Path, settings: StudySettings, data_dir: str | Path | None
) -> Config:
    """The paper's recipe (cosine T=1000, P2, Adam 1e-3 (0.9, 0.99), EMA warm-up; the defaults of
    :class:`hqdm.config.Config`) for ``settings.epochs`` epochs, grids drawn with the evaluation sampler."""
    e = settings.evaluation
    return config_from_dict(
        {
            "model": {"name": model, "semantics": "paper"},
            "data": {
                "dataset": dataset,
                "data_dir": None if data_dir is None else str(data_dir),
                "subset": settings.train_subset,
            },
            "training": {
                "batch_size": settings.batch_size,
                "epochs": settings.epochs,
                "seed": seed,
                "grid_epochs": list(settings.grid_epochs),
                "precision": settings.precision,
            },
            "sampling": {"sampler": e.sampler, "steps": e.steps, "eta": e.eta, "num_images": 64},
            "output_dir": str(run_dir),
        }
    )


def _keep_epoch(run_dir: Path, epoch: int) -> Path:
    """Copy the weights, state and config of the checkpoint ending ``epoch`` to ``epochs/epoch_XXX``."""
    checkpoint = latest_checkpoint(run_dir)
    state = read_state(checkpoint)[0] if checkpoint is not None else None
    if state is None or (state.epoch, state.batch) != (epoch, 0):
        raise RuntimeError(f"{run_dir}: expected the checkpoint ending epoch {epoch}, found {checkpoint}")
    kept = run_dir / "epochs" / f"epoch_{epoch:03d}"
    partial = kept.with_name(kept.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in KEPT_FILES:
        shutil.copy2(checkpoint / name, partial / name)
    partial.rename(kept)  # a kept epoch is complete or absent
    return kept


def _train_to(cfg: Config, epoch: int, images: Tensor, factory: ModelFactory, progress: bool) -> None:
    run_dir = Path(cfg.output_dir)
    steps = epoch * math.ceil(len(images) / cfg.training.batch_size)
    resume = latest_checkpoint(run_dir) is not None
    train(cfg, resume=resume, max_steps=steps, images=images, model_factory=factory, progress=progress)


def _eval_dir(run_dir: Path, epoch: int, use_ema: bool) -> Path:
    """Where the evaluation of one kept epoch's EMA (or online) weights goes."""
    return run_dir / EVAL_FOLDERS[weights_label(use_ema)] / f"epoch_{epoch:03d}"


def _check_same_protocol(scored: Path, evaluation: EvalSettings, use_ema: bool) -> None:
    """One study folder holds one evaluation protocol: an epoch scored another way is not "done"."""
    record = json.loads((scored / EVALUATION_JSON).read_text(encoding="utf-8"))
    changes = evaluation.protocol_changes(stored_settings(record))
    if sampled_weights(record) != weights_label(use_ema):  # a file moved by hand
        changes = ", ".join(filter(None, [changes, f"weights {sampled_weights(record)!r}"]))
    if changes:
        raise ConfigError(
            f"{scored} was scored another way than this run asks ({changes}); one study folder holds "
            "one protocol. Use another --out, and copy runs/<model>/seed<k>/epochs/ there to score the "
            "kept epochs the new way without training again."
        )


def _metrics_row(record: dict[str, Any], seed: int) -> dict[str, Any]:
    m, s, ck = record["metrics"], stored_settings(record), record["checkpoint"]
    return {
        "weights": sampled_weights(record),
        "model": ck["model_name"],
        "seed": seed,
        "epoch": ck["epoch"],
        "step": ck["step"],
        "fid": m.get("fid"),
        "kid_mean": m.get("kid_mean"),
        "kid_std": m.get("kid_std"),
        "num_generated": m["num_generated"],
        "num_real": m["num_real"],
        "real_split": record["real"]["split"],
        "sampler": sampler_label(s["sampler"], s["steps"], s.get("eta")),
        "precision": record.get("precision"),
        "fid_precision": s["feature_precision"],
        "params": ck["params_total"],
    }


def write_metrics_csv(out_dir: Path) -> Path:
    """``metrics.csv``: every evaluation found under ``runs/``, sorted by weights, model, seed and epoch."""
    rows = []
    for folder in EVAL_FOLDERS.values():
        for path in (out_dir / "runs").glob(f"*/seed*/{folder}/epoch_*/{EVALUATION_JSON}"):
            seed = int(path.parents[2].name.removeprefix("seed"))
            rows.append(_metrics_row(json.loads(path.read_text(encoding="utf-8")), seed))
    rows.sort(key=lambda r: (r["weights"] != "ema", r["model"], r["seed"], r["epoch"]))
    target = out_dir / METRICS_CSV
    if rows:
        lines = [",".join(rows[0])] + [
            ",".join("" if v is None else str(v) for v in r.values()) for r in rows
        ]
        atomic_write_text(target, "\n".join(lines) + "\n")
    return target


def run_study(
    dataset: str,
    models: tuple[str, ...],
    seeds: tuple[int, ...],
    out_dir: Path,
    *,
    settings: StudySettings | None = None,
    data_dir: str | Path | None = None,
    real_images: Tensor | None = None,
    model_factory: ModelFactory = default_model_factory,
    feature_extractor: nn.Module | None = None,
    progress: bool = True,
    train_only: bool = False,
    log: Log = print,
) -> Path:
    """Run every (model, seed) cell, evaluation epoch by evaluation epoch; return ``metrics.csv``.

    ``train_only`` keeps the evaluation epochs' weights but scores none of them. ``real_images`` (uint8)
    replaces the test split, ``feature_extractor`` the FID network (tests)."""
    settings = settings or StudySettings()
    if real_images is None and not train_only:
        real_images = _test_images(dataset, data_dir)
    images: Tensor | None = None
    for seed in seeds:
        for model in models:
            run_dir = out_dir / "runs" / model / f"seed{seed}"
            cfg = study_config(dataset, model, seed, run_dir, settings, data_dir)
            pending = []
            for epoch in sorted(settings.eval_epochs):
                scored = _eval_dir(run_dir, epoch, settings.use_ema)
                if (scored / EVALUATION_JSON).is_file():
                    _check_same_protocol(scored, settings.evaluation, settings.use_ema)
                    continue
                kept = run_dir / "epochs" / f"epoch_{epoch:03d}"
                if not kept.is_dir():
                    log(f"{model} seed {seed}: training to epoch {epoch}")
                    images = images if images is not None else load_training_images(cfg)
                    _train_to(cfg, epoch, images, model_factory, progress)
                    kept = _keep_epoch(run_dir, epoch)
                pending.append((epoch, scored, kept))
            if train_only:
                continue
            # the last epoch first: the headline score is in should the session end before the rest
            for epoch, scored, kept in sorted(
                pending, key=lambda item: (item[0] != settings.epochs, item[0])
            ):
                if not settings.use_ema and not (kept / "model.safetensors").is_file():
                    log(f"{model} seed {seed}: epoch {epoch} was kept without its online weights; skipped")
                    continue
                weights = "EMA" if settings.use_ema else "online"
                log(f"{model} seed {seed}: evaluating the {weights} weights of epoch {epoch}")
                result = evaluate_checkpoint(
                    kept,
                    scored,
                    replace(settings.evaluation, seed=seed),  # sampling noise follows the seed
                    data_dir=data_dir,
                    precision=settings.precision,
                    progress=progress,
                    model_factory=model_factory,
                    feature_extractor=feature_extractor,
                    real_images=real_images,
                    real_split="test",
                    use_ema=settings.use_ema,
                )
                log(f"  FID {result.record['metrics'].get('fid'):.2f} ({scored})")
                write_report(out_dir, dataset, write_metrics_csv(out_dir))
    return finish_study(out_dir, dataset)


def cache_test_features(dataset: str, data_dir: str | Path | None, fid_precision: str) -> None:
    """Extract and cache the FID features of the test split the evaluations score against (a no-op when
    they are cached), so that cells evaluated in parallel find them instead of each extracting them."""
    device = resolve_device("auto")
    extractor = FIDInceptionFeatures(precision=fid_precision).to(device)
    real_features(_test_images(dataset, data_dir), extractor, batch_size=250, device=device, progress=True)


def _test_images(dataset: str, data_dir: str | Path | None) -> Tensor:
    """The uint8 test split every evaluation of the study scores against."""
    try:
        return load_dataset(dataset, "test", data_dir=data_dir).images
    except ValueError as err:
        raise ConfigError(f"--dataset: {err}") from err


def finish_study(out_dir: Path, dataset: str) -> Path:
    """``metrics.csv`` and the report over every evaluation under ``out_dir`` (whichever process made it)."""
    metrics = write_metrics_csv(out_dir)
    if metrics.is_file():
        write_report(out_dir, dataset, metrics)
    return metrics
