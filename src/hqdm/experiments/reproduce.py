"""Reproduce Tables 1-2 of De Falco et al. (2024): train every column, evaluate it, write the table.

Layout of ``out_dir`` (``results/<dataset>-<budget>/`` from the command line)::

    runs/<cell>/seed<k>/         training run (checkpoints, log.csv, loss.png, samples/epoch_XXX.png)
    runs/<cell>/seed<k>/eval/    evaluation.json + evaluation.md of the run's last checkpoint
    configs/<cell>-seed<k>.yaml  the resolved config of each run (what ``hqdm train`` would take)
    table.md, table.csv          mean ± std over seeds per column; cells.csv holds every seed
    loss_curves.png              every run's loss curve
    commands.md, versions.json   the exact commands and package versions

Rerunning skips finished work: complete runs are not retrained (an interrupted one resumes from its last
checkpoint) and an evaluation whose JSON matches the budget's settings is read back instead of recomputed.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from hqdm.config import Config, ConfigError, config_from_dict, config_to_dict
from hqdm.experiments.budgets import Budget, get_budget
from hqdm.experiments.evaluate_checkpoint import (
    EVALUATION_JSON,
    EvalSettings,
    evaluate_checkpoint,
    evaluate_command,
    package_versions,
    sampled_weights,
    stored_settings,
)
from hqdm.experiments.tables import CellResult, write_loss_curves, write_tables
from hqdm.files import atomic_write_text
from hqdm.train import latest_checkpoint, read_state, train
from hqdm.train.setup import ModelFactory, default_model_factory

__all__ = [
    "COLUMNS",
    "DATASETS",
    "SEMANTICS_CHOICES",
    "Cell",
    "Column",
    "ReproduceResult",
    "cell_config",
    "plan_cells",
    "reproduce_defalco2024",
]

BASE_SEED = 42  # the paper's training seed; seed index k trains with 42 + k
TRANSFER_TARGET = "qvunet-1fq"  # the paper's transfer target (Figs. 13c, 14c)
# The paper's transfer split (classical + hybrid epochs): 19 + 1 on MNIST, 18 + 2 on Fashion-MNIST.
PAPER_FINETUNE_EPOCHS = {"mnist": 1, "fashion-mnist": 2}
DATASETS = tuple(PAPER_FINETUNE_EPOCHS)
EMBEDDED = {"mnist": "embedded-mnist", "fashion-mnist": "embedded-fashion-mnist"}
SEMANTICS_CHOICES = ("paper", "reference-code", "both-7hq")
Log = Callable[[str], None]


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    model: str
    transfer: bool = False


COLUMNS = (
    Column("classical", "Classical", "unet"),
    Column("1hq", "1HQConv", "qvunet-1hq"),
    Column("7hq", "7HQConv", "qvunet-7hq"),
    Column("fullhq", "FullHQConv", "qvunet-full-hq"),
    Column("quanvunet", "QuanvU-Net", "quanvunet"),
    Column("transfer", "Transfer learning", "unet", transfer=True),
)


@dataclass(frozen=True)
class Cell:
    """One column of the table in one semantics; trained and evaluated once per seed."""

    column: Column
    semantics: str

    @property
    def key(self) -> str:
        return self.column.key if self.semantics == "paper" else f"{self.column.key}-{self.semantics}"

    @property
    def label(self) -> str:
        return self.column.label if self.semantics == "paper" else f"{self.column.label} ({self.semantics})"


@dataclass(frozen=True)
class ReproduceResult:
    out_dir: Path
    table_md: Path
    table_csv: Path
    cells: list[CellResult]


def plan_cells(semantics: str) -> list[Cell]:
    """The table's cells: every column in one semantics, or (both-7hq) paper plus 7HQConv reference-code."""
    if semantics not in SEMANTICS_CHOICES:
        raise ConfigError(f"--semantics: unknown {semantics!r}; choose from {', '.join(SEMANTICS_CHOICES)}")
    if semantics == "both-7hq":
        seven = next(c for c in COLUMNS if c.key == "7hq")
        return [Cell(c, "paper") for c in COLUMNS] + [Cell(seven, "reference-code")]
    return [Cell(c, semantics) for c in COLUMNS]


def cell_config(
    cell: Cell, dataset: str, budget: Budget, seed_index: int, run_dir: Path, data_dir: str | Path | None
) -> Config:
    """The resolved training config of one cell and seed (the paper's recipe shortened by the budget)."""
    training = {
        "batch_size": budget.batch_size,
        "epochs": budget.epochs,
        "seed": BASE_SEED + seed_index,
        "grid_epochs": list(budget.grid_epochs),
        "checkpoint_every": budget.checkpoint_every,
        "keep_last": 3,
        "precision": budget.precision,
    }
    raw: dict[str, Any] = {
        "model": {"name": cell.column.model, "semantics": cell.semantics},
        "data": {
            "dataset": EMBEDDED[dataset] if budget.embedded_data else dataset,
            "data_dir": None if data_dir is None else str(data_dir),
            "subset": budget.train_subset,
            "subset_seed": 0,
        },
        "training": training,
        "sampling": {
            "sampler": budget.grid_sampler,
            "steps": budget.grid_steps,
            "num_images": budget.grid_images,
        },
        "output_dir": str(run_dir),
    }
    if cell.column.transfer:
        finetune = budget.finetune_epochs or PAPER_FINETUNE_EPOCHS[dataset]
        raw["transfer"] = {
            "enabled": True,
            "classical_epochs": budget.epochs - finetune,
            "finetune_epochs": finetune,
            "target_model": TRANSFER_TARGET,
        }
    return config_from_dict(raw)


def _training_finished(checkpoint: Path, cfg: Config) -> bool:
    state, _ = read_state(checkpoint)
    return state.epoch >= cfg.training.epochs and state.batch == 0


def _train_cell(cfg: Config, factory: ModelFactory, progress: bool, log: Log) -> Path:
    """Train (or resume) one run to its end; a finished run is left alone. Returns its last checkpoint."""
    run_dir = Path(cfg.output_dir)
    last = latest_checkpoint(run_dir)
    if last is not None and _training_finished(last, cfg):
        log(f"  training finished earlier: {last}")
        return last
    if last is not None:
        log(f"  resuming training from {last}")
    result = train(cfg, resume=last is not None, model_factory=factory, progress=progress)
    if result.final_checkpoint is None:
        raise RuntimeError(f"training of {run_dir} ended without a checkpoint")
    return result.final_checkpoint


def _reusable_evaluation(
    eval_dir: Path, settings: EvalSettings, checkpoint: Path, inception_weights: str | Path | None
) -> dict[str, Any] | None:
    """The stored evaluation if it was made from the same step's EMA weights with the same settings and IS
    weights."""
    path = eval_dir / EVALUATION_JSON
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    same_settings = stored_settings(record) == settings.as_dict()
    weights = None if inception_weights is None else str(inception_weights)
    same_weights = record.get("inception_weights") == weights
    same_step = record.get("checkpoint", {}).get("step") == read_state(checkpoint)[0].step
    ema = sampled_weights(record) == "ema"
    return record if same_settings and same_weights and same_step and ema else None


@dataclass(frozen=True)
class _Hooks:
    """Replacements for tests: small models and a small stand-in for the FID network."""

    model_factory: ModelFactory = default_model_factory
    feature_extractor: nn.Module | None = None


def _run_cell(
    cell: Cell,
    seed_index: int,
    cfg: Config,
    budget: Budget,
    *,
    data_dir: str | Path | None,
    inception_weights: str | Path | None,
    cache_dir: str | Path | None,
    hooks: _Hooks,
    progress: bool,
    log: Log,
) -> CellResult:
    checkpoint = _train_cell(cfg, hooks.model_factory, progress, log)
    run_dir = Path(cfg.output_dir)
    settings = replace(budget.evaluation, seed=seed_index)
    record = _reusable_evaluation(run_dir / "eval", settings, checkpoint, inception_weights)
    if record is not None:
        log("  evaluation read back from its JSON")
    else:
        log(f"  evaluating {settings.num_samples} samples ({settings.sampler})")
        record = evaluate_checkpoint(
            checkpoint,
            run_dir / "eval",
            settings,
            data_dir=data_dir,
            inception_weights=inception_weights,
            cache_dir=cache_dir,
            progress=progress,
            model_factory=hooks.model_factory,
            feature_extractor=hooks.feature_extractor,
        ).record
    state, _ = read_state(checkpoint)
    return CellResult(
        key=cell.key,
        label=cell.label,
        seed=seed_index,
        run_dir=run_dir,
        record=record,
        train_seconds=state.elapsed,
        steps=state.step,
    )


def _write_config_yaml(cfg: Config, path: Path) -> None:
    atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def _write_provenance(
    out_dir: Path,
    command: str | None,
    configs: list[Path],
    results: list[CellResult],
    budget: Budget,
    *,
    data_dir: str | Path | None,
    inception_weights: str | Path | None,
) -> None:
    lines = [
        "# Commands",
        "",
        "The whole table (rerun it to resume; finished cells are skipped):",
        "",
        "```sh",
        command or "(called from Python: hqdm.experiments.reproduce.reproduce_defalco2024)",
        "```",
        "",
        "Each cell on its own (`--resume` continues a started run; leave it out for a new one):",
        "",
        "```sh",
    ]
    for config_path, result in zip(configs, results, strict=True):
        settings = replace(budget.evaluation, seed=result.seed)
        lines.append(shlex.join(["hqdm", "train", str(config_path), "--resume"]))
        lines.append(
            evaluate_command(
                result.run_dir,
                result.run_dir / "eval",
                settings,
                data_dir=data_dir,
                inception_weights=inception_weights,
            )
        )
    lines += ["```", ""]
    atomic_write_text(out_dir / "commands.md", "\n".join(lines))
    atomic_write_text(out_dir / "versions.json", json.dumps(package_versions(), indent=2) + "\n")


def reproduce_defalco2024(
    out_dir: str | Path,
    *,
    dataset: str,
    budget: str | Budget = "cpu",
    seeds: int = 2,
    data_dir: str | Path | None = None,
    semantics: str = "both-7hq",
    inception_weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    command: str | None = None,
    progress: bool = False,
    log: Log = print,
    model_factory: ModelFactory = default_model_factory,
    feature_extractor: nn.Module | None = None,
) -> ReproduceResult:
    """Train and evaluate every cell of the paper's table on ``dataset`` for ``seeds`` seeds; write the table.

    ``command`` is recorded in commands.md (the CLI passes its own command line). ``model_factory`` and
    ``feature_extractor`` replace the real models and the FID network (tests use small stand-ins).
    """
    if dataset not in DATASETS:
        raise ConfigError(f"--dataset: unknown {dataset!r}; choose from {', '.join(DATASETS)}")
    if seeds < 1:
        raise ConfigError(f"--seeds: need at least one seed, got {seeds}")
    chosen = get_budget(budget) if isinstance(budget, str) else budget
    cells = plan_cells(semantics)
    out = Path(out_dir)
    hooks = _Hooks(model_factory, feature_extractor)
    results: list[CellResult] = []
    configs: list[Path] = []
    started = time.perf_counter()
    jobs = [(cell, k) for cell in cells for k in range(seeds)]
    for i, (cell, k) in enumerate(jobs, start=1):
        run_dir = out / "runs" / cell.key / f"seed{k}"
        cfg = cell_config(cell, dataset, chosen, k, run_dir, data_dir)
        config_path = out / "configs" / f"{cell.key}-seed{k}.yaml"
        _write_config_yaml(cfg, config_path)
        configs.append(config_path)
        log(f"[{i}/{len(jobs)}] {cell.label}, seed {k} ({time.perf_counter() - started:.0f} s so far)")
        results.append(
            _run_cell(
                cell,
                k,
                cfg,
                chosen,
                data_dir=data_dir,
                inception_weights=inception_weights,
                cache_dir=cache_dir,
                hooks=hooks,
                progress=progress,
                log=log,
            )
        )
        write_tables(out, results, dataset=dataset, budget=chosen, seeds=seeds, planned_runs=len(jobs))
    table_md, table_csv = write_tables(out, results, dataset=dataset, budget=chosen, seeds=seeds)
    write_loss_curves(out / "loss_curves.png", results)
    _write_provenance(
        out, command, configs, results, chosen, data_dir=data_dir, inception_weights=inception_weights
    )
    log(f"table: {table_md}")
    return ReproduceResult(out, table_md, table_csv, results)
