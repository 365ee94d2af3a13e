"""The cpu budgets still produce the runs behind the committed tables.

Each committed table keeps the config of every run it trained and the settings of every evaluation it
scored. ``hqdm reproduce`` rebuilds both from its budget; if a change to a budget (or to how a budget
becomes a config) would make it run something else, the table no longer describes what the command does,
and this test names the table and the command that remakes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from hqdm.config import config_to_dict
from hqdm.experiments import chen2025, reproduce
from hqdm.experiments.budgets import get_budget

RESULTS = Path(__file__).resolve().parents[1] / "results"

DEFALCO_TABLES = {
    "mnist": "results/mnist-cpu/table.md (docs/RESULTS.md, 'MNIST, cpu budget'): hqdm reproduce "
    "--dataset mnist --budget cpu --seeds 2 --data-dir DATA --out results/mnist-cpu",
    "fashion-mnist": "results/fashion-mnist-cpu/table.md (docs/RESULTS.md, 'Fashion-MNIST, cpu budget'): "
    "hqdm reproduce --dataset fashion-mnist --budget cpu --seeds 2 --data-dir DATA "
    "--out results/fashion-mnist-cpu",
}
CHEN_TABLE = (
    "results/chen2025-mnist-cpu/table.md (docs/RESULTS.md and docs/chen2025.md, 'MNIST, digits 0 and 1'): "
    "hqdm reproduce --paper chen2025 --budget cpu --seeds 3 --digits 0,1 --data-dir DATA "
    "--out results/chen2025-mnist-cpu"
)


def _trained_fp32_before_the_field(config: dict[str, Any]) -> dict[str, Any]:
    """Runs from before ``training.precision`` existed trained in float32."""
    return {**config, "training": {"precision": "fp32", **config["training"]}}


def _differences(stored: Any, rebuilt: Any, where: str = "") -> list[str]:
    """Dotted keys whose values differ (JSON-normalised: tuples are lists)."""
    if isinstance(stored, dict) and isinstance(rebuilt, dict):
        keys = sorted(stored.keys() | rebuilt.keys())
        return [d for k in keys for d in _differences(stored.get(k), rebuilt.get(k), f"{where}{k}.")]
    if json.loads(json.dumps(stored)) != json.loads(json.dumps(rebuilt)):
        return [f"{where.rstrip('.')}: table ran {stored!r}, the budget now gives {rebuilt!r}"]
    return []


def _fail_if_different(differences: list[str], table: str) -> None:
    if differences:
        pytest.fail(
            f"the cpu budget no longer reproduces {table.split(':')[0]}; restore it, or re-run the table "
            f"and commit its new results:\n  {table.split(': ', 1)[1]}\n" + "\n".join(differences[:20])
        )


@pytest.mark.parametrize("dataset", sorted(DEFALCO_TABLES))
def test_defalco_cpu_budget_reproduces_the_committed_table(dataset: str) -> None:
    budget, cells = get_budget("cpu"), {cell.key: cell for cell in reproduce.plan_cells("both-7hq")}
    folder = RESULTS / f"{dataset}-cpu"
    configs = sorted((folder / "configs").glob("*.yaml"))
    assert len(configs) == 2 * len(cells), configs
    differences = []
    for path in configs:
        key, _, seed = path.stem.rpartition("-seed")
        stored = _trained_fp32_before_the_field(yaml.safe_load(path.read_text(encoding="utf-8")))
        cfg = reproduce.cell_config(
            cells[key], dataset, budget, int(seed), Path(stored["output_dir"]), stored["data"]["data_dir"]
        )
        differences += _differences(stored, config_to_dict(cfg), f"{path.name}: ")
        record = json.loads((folder / "runs" / key / f"seed{seed}" / "eval" / "evaluation.json").read_text())
        scored = {"feature_precision": "fp32", **record["settings"]}  # records before the field: fp32
        settings = replace(budget.evaluation, seed=int(seed)).as_dict()
        differences += _differences(scored, settings, f"{key}/seed{seed} evaluation: ")
    _fail_if_different(differences, DEFALCO_TABLES[dataset])


def test_chen2025_cpu_budget_reproduces_the_committed_table() -> None:
    budget = chen2025.get_budget("cpu")
    cells = {cell.key: cell for cell in chen2025.CELLS}
    runs = sorted((RESULTS / "chen2025-mnist-cpu" / "runs").glob("*/digit*/seed*"))
    assert len(runs) == len(cells) * 2 * 3, runs  # cells x digits 0, 1 x seeds 0-2
    differences = []
    for run in runs:
        cell, digit, seed = run.parent.parent.name, int(run.parent.name[5:]), int(run.name[4:])
        stored = _trained_fp32_before_the_field(json.loads((run / "config.json").read_text()))
        cfg = chen2025.cell_config(
            cells[cell], budget, digit=digit, seed_index=seed, run_dir=Path(stored["output_dir"]),
            data_dir=stored["data"]["data_dir"],
        )  # fmt: skip
        differences += _differences(stored, config_to_dict(cfg), f"{run.name}/{cell}/digit{digit}: ")
        recorded = {
            "precision": "fp32",
            **json.loads((run / "eval" / "evaluation.json").read_text())["budget"],
        }
        differences += _differences(recorded, asdict(budget), f"{cell}/digit{digit}/seed{seed} budget: ")
    _fail_if_different(differences, CHEN_TABLE)
