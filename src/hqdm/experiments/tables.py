"""The reproduction's outputs: table.md / table.csv (mean ± std over seeds), cells.csv, loss curves."""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hqdm.diffusion import sampler_description
from hqdm.files import atomic_path, atomic_write_text
from hqdm.train.logs import read_log

if TYPE_CHECKING:
    from hqdm.experiments.budgets import Budget

__all__ = ["CellResult", "mean_std", "write_loss_curves", "write_tables"]

# (table row label, csv column prefix, metric key in the evaluation JSON, decimals)
_METRIC_ROWS = (
    ("FID", "fid", "fid", 2),
    ("KID", "kid", "kid_mean", 4),
    ("IS", "is", "is_mean", 3),
    ("SSIM", "ssim", "ssim", 3),
)


@dataclass(frozen=True)
class CellResult:
    """One trained and evaluated run: a table column (``key``/``label``) at one seed."""

    key: str
    label: str
    seed: int
    run_dir: Path
    record: dict[str, Any]  # the evaluation JSON
    train_seconds: float
    steps: int

    @property
    def metrics(self) -> dict[str, Any]:
        return self.record["metrics"]

    @property
    def eval_seconds(self) -> float:
        return float(self.record.get("seconds", float("nan")))

    @property
    def params(self) -> int:
        return int(self.record["checkpoint"]["params_total"])


def mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof 1) over seeds; None when a value is missing (e.g. IS unavailable)."""
    if not values or any(v is None for v in values):
        return None, None
    numbers = [float(v) for v in values if v is not None]
    return statistics.fmean(numbers), (statistics.stdev(numbers) if len(numbers) > 1 else None)


def _group(results: list[CellResult]) -> dict[str, list[CellResult]]:
    groups: dict[str, list[CellResult]] = {}
    for result in results:
        groups.setdefault(result.key, []).append(result)
    return groups


def _cell_text(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _summary(runs: list[CellResult]) -> dict[str, Any]:
    """Per-column numbers for table.csv (one row per column)."""
    row: dict[str, Any] = {
        "column": runs[0].label,
        "key": runs[0].key,
        "model": runs[0].record["checkpoint"]["model_name"],
        "semantics": runs[0].record["checkpoint"]["semantics"],
        "params": runs[0].params,
        "seeds": len(runs),
        "steps": runs[0].steps,
        "num_samples": runs[0].metrics["num_generated"],
    }
    for _, name, key, _ in _METRIC_ROWS:
        if key in runs[0].metrics:
            row[f"{name}_mean"], row[f"{name}_std"] = mean_std([r.metrics.get(key) for r in runs])
    row["train_seconds_mean"], row["train_seconds_std"] = mean_std([r.train_seconds for r in runs])
    row["eval_seconds_mean"], row["eval_seconds_std"] = mean_std([r.eval_seconds for r in runs])
    return row


def _csv_text(rows: list[dict[str, Any]]) -> str:
    fields = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def _markdown_table(groups: dict[str, list[CellResult]]) -> list[str]:
    columns = list(groups.values())
    lines = [
        "| Metrics | " + " | ".join(runs[0].label for runs in columns) + " |",
        "|---|" + "---:|" * len(columns),
        "| Params | " + " | ".join(f"{runs[0].params:,}" for runs in columns) + " |",
    ]
    present = {key for runs in columns for key in runs[0].metrics}
    for label, _, key, digits in _METRIC_ROWS:
        if key in present:
            cells = [_cell_text(*mean_std([r.metrics.get(key) for r in runs]), digits) for runs in columns]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for label, attr in (("Train time (s)", "train_seconds"), ("Eval time (s)", "eval_seconds")):
        cells = [_cell_text(*mean_std([getattr(r, attr) for r in runs]), 0) for runs in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _notes(results: list[CellResult], dataset: str, budget: Budget, seeds: int) -> list[str]:
    s = budget.evaluation
    sampler = sampler_description(s.sampler, s.steps, s.eta)
    data = (
        f"a fixed subset of {budget.train_subset} train images" if budget.train_subset else "the train split"
    )
    kid_sizes = sorted({r.metrics.get("kid_subset_size") for r in results if "kid_subset_size" in r.metrics})
    is_reasons = {r.metrics.get("is_unavailable_reason") for r in results} - {None}
    notes = [
        f"Budget `{budget.name}`: {budget.epochs} epoch(s) over {data}, batch {budget.batch_size} "
        f"({results[0].steps} optimiser steps per run); {seeds} seed(s) per column.",
        f"Metrics on {s.num_samples} EMA samples per run ({sampler}) against {s.num_samples} real train "
        "images; mean ± sample std over seeds (no ± with one seed).",
    ]
    if kid_sizes:
        notes.append(f"KID subset size {', '.join(map(str, kid_sizes))}.")
    notes += [f"IS unavailable: {reason}" for reason in sorted(is_reasons)]
    return notes


def _artifact_links(out_dir: Path, results: list[CellResult]) -> list[str]:
    lines = ["## Sample grids and loss curves", "", "All runs: [loss_curves.png](loss_curves.png).", ""]
    for result in results:
        run = result.run_dir.relative_to(out_dir)
        grids = sorted((result.run_dir / "samples").glob("epoch_*.png"))
        links = [f"[{g.stem.replace('_', ' ')}]({(run / 'samples' / g.name).as_posix()})" for g in grids]
        loss = f"[loss]({(run / 'loss.png').as_posix()})"
        lines.append(f"- {result.label}, seed {result.seed}: " + ", ".join([*links, loss]))
    return lines


def write_tables(
    out_dir: Path,
    results: list[CellResult],
    *,
    dataset: str,
    budget: Budget,
    seeds: int,
    planned_runs: int | None = None,
) -> tuple[Path, Path]:
    """Write table.md, table.csv (per column) and cells.csv (per run); return the first two paths.

    With fewer ``results`` than ``planned_runs`` the table is marked partial (it is rewritten after every
    run, so a long reproduction shows its numbers while it is still going).
    """
    groups = _group(results)
    title = f"# De Falco et al. (2024) reproduction: {dataset}, budget `{budget.name}`"
    body = [title, ""]
    if planned_runs is not None and len(results) < planned_runs:
        body += [f"**Partial: {len(results)} of {planned_runs} runs finished so far.**", ""]
    body += [*_markdown_table(groups), "", *_notes(results, dataset, budget, seeds), ""]
    body += [*_artifact_links(out_dir, results), ""]
    table_md, table_csv = out_dir / "table.md", out_dir / "table.csv"
    atomic_write_text(table_md, "\n".join(body))
    atomic_write_text(table_csv, _csv_text([_summary(runs) for runs in groups.values()]))
    per_run = [
        {
            "key": r.key,
            "seed": r.seed,
            "steps": r.steps,
            "params": r.params,
            **{name: r.metrics.get(key) for _, name, key, _ in _METRIC_ROWS if key in r.metrics},
            "kid_std_subsets": r.metrics.get("kid_std"),
            "train_seconds": round(r.train_seconds, 1),
            "eval_seconds": r.eval_seconds,
            "run_dir": r.run_dir.relative_to(out_dir).as_posix(),
        }
        for r in results
    ]
    atomic_write_text(out_dir / "cells.csv", _csv_text(per_run))
    return table_md, table_csv


def write_loss_curves(path: Path, results: list[CellResult]) -> None:
    """Every run's logged loss against the step, one line per run (seeds share their column's colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    colours = {key: f"C{i}" for i, key in enumerate(dict.fromkeys(r.key for r in results))}
    for result in results:
        rows = read_log(result.run_dir / "log.csv")
        label = result.label if result.seed == 0 else None
        ax.plot([r.step for r in rows], [r.loss for r in rows], color=colours[result.key], lw=1, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("P2-weighted loss")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
