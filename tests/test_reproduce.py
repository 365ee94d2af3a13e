"""``hqdm evaluate`` and ``hqdm reproduce``: streaming evaluation, the table files, skip-on-rerun, dispatch.

The reproduction tests run the smoke budget end to end with small stand-in models and a 4-feature stand-in
for the Inception network (hooks of ``reproduce_defalco2024``), so a whole table takes a few seconds.
"""

from __future__ import annotations

import csv
import json
import shlex
import shutil
import statistics
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from conftest import PixelStats, write_checkpoint
from hqdm.cli import EXIT_USER_ERROR, build_parser, main
from hqdm.config import ConfigError, ModelConfig, config_from_dict, config_to_dict, load_config
from hqdm.experiments.budgets import BUDGETS, PAPER, SMOKE, get_budget
from hqdm.experiments.evaluate_checkpoint import EvalSettings, sample_batches
from hqdm.experiments.reproduce import COLUMNS, cell_config, plan_cells, reproduce_defalco2024
from hqdm.experiments.tables import mean_std
from hqdm.models import build_model
from hqdm.train import find_checkpoints
from hqdm.train import trainer as trainer_module

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class TinyEps(nn.Module):
    """A few-hundred-parameter eps-model; its vertex (``mid.``) width depends on the model name."""

    def __init__(self, mid_width: int) -> None:
        super().__init__()
        self.inp = nn.Conv2d(1, 4, 3, padding=1)
        self.temb = nn.Linear(1, 4)
        self.mid = nn.Sequential(nn.Conv2d(4, mid_width, 1), nn.SiLU(), nn.Conv2d(mid_width, 4, 1))
        self.out = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h = self.inp(x) + self.temb(t.float()[:, None] / 1000)[:, :, None, None]
        return self.out(h + self.mid(h))


class CountingFactory:
    """Model factory that records which models it built (a rerun that skips everything builds none)."""

    def __init__(self) -> None:
        self.built: list[str] = []

    def __call__(self, model: ModelConfig) -> nn.Module:
        self.built.append(model.name)
        return tiny_model(model.name)


def tiny_model(name: str) -> nn.Module:
    return TinyEps(4 + len(name) % 5)  # the vertex width differs between most model names


def refuse_models(model: ModelConfig) -> nn.Module:
    raise AssertionError(f"a finished cell was recomputed ({model.name})")


TEST_BUDGET = SMOKE.with_overrides(evaluation={"num_samples": 8, "batch_size": 3, "kid_subset_size": 4})


@pytest.fixture(scope="module", autouse=True)
def fast_trainer_loss_plots():
    """The trainer redraws loss.png with matplotlib (~1 s a draw under load), which would dominate these
    tiny runs; its plotting is tested in test_train.py, so here it only writes a placeholder file."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer_module, "plot_loss_curve", lambda rows, path: path.write_bytes(b"png"))
        yield


def run_smoke(out: Path, factory, seeds: int = 2, **kwargs) -> object:
    return reproduce_defalco2024(
        out,
        dataset="mnist",
        budget=kwargs.pop("budget", TEST_BUDGET),
        seeds=seeds,
        cache_dir=out.parent / "fid-cache",
        log=lambda _: None,
        model_factory=factory,
        feature_extractor=PixelStats(),
        **kwargs,
    )


@pytest.fixture(scope="module")
def smoke_table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CountingFactory]:
    out = tmp_path_factory.mktemp("repro") / "mnist-smoke"
    factory = CountingFactory()
    run_smoke(out, factory)
    return out, factory


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --- the table -----------------------------------------------------------------------------------------


def test_smoke_reproduction_writes_every_column(smoke_table: tuple[Path, CountingFactory]) -> None:
    out, factory = smoke_table
    labels = [c.label for c in COLUMNS] + ["7HQConv (reference-code)"]
    table = (out / "table.md").read_text(encoding="utf-8")
    header = table.splitlines()[2]
    assert "Partial" not in table  # rewritten after each run, complete at the end
    assert all(label in header for label in labels)
    rows = read_csv(out / "table.csv")
    assert [r["column"] for r in rows] == labels and all(r["seeds"] == "2" for r in rows)
    # 14 runs trained and evaluated; each transfer run also builds its target for training
    assert len(factory.built) == 14 + 2 + 14 and factory.built.count("qvunet-1fq") == 4
    assert (out / "runs" / "transfer" / "seed0" / "transfer.json").is_file()
    for run in (out / "runs").glob("*/seed*"):
        assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["epoch_001.png", "epoch_002.png"]
    for name in ("loss_curves.png", "commands.md", "versions.json", "cells.csv"):
        assert (out / name).is_file(), name
    assert "hqdm evaluate" in (out / "commands.md").read_text(encoding="utf-8")
    assert "(runs/transfer/seed1/samples/epoch_002.png)" in (out / "table.md").read_text(encoding="utf-8")


def test_table_numbers_are_mean_and_std_of_the_seed_evaluations(
    smoke_table: tuple[Path, CountingFactory],
) -> None:
    out, _ = smoke_table
    row = next(r for r in read_csv(out / "table.csv") if r["key"] == "7hq-reference-code")
    fids = []
    for seed in (0, 1):
        record = json.loads(
            (out / "runs" / "7hq-reference-code" / f"seed{seed}" / "eval" / "evaluation.json").read_text()
        )
        assert record["checkpoint"]["semantics"] == "reference-code"
        assert record["settings"]["seed"] == seed and record["metrics"]["num_generated"] == 8
        fids.append(record["metrics"]["fid"])
    assert fids[0] != fids[1]  # the seeds really differ
    assert float(row["fid_mean"]) == pytest.approx(statistics.fmean(fids))
    assert float(row["fid_std"]) == pytest.approx(statistics.stdev(fids))
    # IS without a classifier: reported unavailable, never a number
    assert row["is_mean"] == "" and row["kid_mean"] != ""
    assert "| IS | n/a |" in (out / "table.md").read_text(encoding="utf-8")


def test_rerun_skips_finished_cells(smoke_table: tuple[Path, CountingFactory]) -> None:
    out, _ = smoke_table
    before = (out / "table.csv").read_text(encoding="utf-8")
    run_smoke(out, refuse_models)  # raises if anything is trained or evaluated again
    assert (out / "table.csv").read_text(encoding="utf-8") == before


def test_rerun_resumes_an_interrupted_run_and_redoes_stale_evaluations(tmp_path: Path) -> None:
    out = tmp_path / "t"
    budget = TEST_BUDGET.with_overrides(grid_epochs=(), evaluation={"num_samples": 6})

    def crash_at_quanvunet(model: ModelConfig) -> nn.Module:
        if model.name == "quanvunet":
            raise KeyboardInterrupt
        return tiny_model(model.name)

    with pytest.raises(KeyboardInterrupt):
        run_smoke(out, crash_at_quanvunet, seeds=1, semantics="paper", budget=budget)
    partial = (out / "table.md").read_text(encoding="utf-8")
    assert "Partial: 4 of 6 runs" in partial and "FullHQConv" in partial and "QuanvU-Net" not in partial
    factory = CountingFactory()
    run_smoke(out, factory, seeds=1, semantics="paper", budget=budget)
    assert factory.built == ["quanvunet", "quanvunet", "unet", "qvunet-1fq", "qvunet-1fq"]  # train + eval
    run = out / "runs" / "1hq" / "seed0"
    final = json.loads((run / "eval" / "evaluation.json").read_text())
    shutil.rmtree(find_checkpoints(run)[-1])  # as if killed during the last epoch
    factory = CountingFactory()
    run_smoke(out, factory, seeds=1, semantics="paper", budget=budget)
    assert factory.built == ["qvunet-1hq"]  # only that run resumed; its evaluation was still valid
    assert json.loads((run / "eval" / "evaluation.json").read_text()) == final
    factory = CountingFactory()
    run_smoke(
        out, factory, seeds=1, semantics="paper", budget=budget.with_overrides(evaluation={"num_samples": 7})
    )
    assert len(factory.built) == 6  # new settings: every cell re-evaluated, none retrained
    assert (out / "cells.csv").read_text().count("\n") == 7


# --- configs and budgets -----------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_paper_budget_matches_the_shipped_configs(dataset: str, tmp_path: Path) -> None:
    transfer = {"mnist": "transfer-19+1", "fashion-mnist": "transfer-18+2"}[dataset]
    for cell in plan_cells("paper"):
        stem = transfer if cell.column.transfer else cell.column.key
        shipped = config_to_dict(load_config(CONFIGS / f"{dataset}-{stem}.yaml", values={"output_dir": "x"}))
        ours = config_to_dict(cell_config(cell, dataset, PAPER, 0, Path("x"), None))
        assert ours == shipped, stem


def test_budgets_fit_the_transfer_column_and_unknown_names_fail() -> None:
    for budget in BUDGETS.values():
        cfg = cell_config(plan_cells("paper")[-1], "mnist", budget, 1, Path("r"), None)
        assert cfg.transfer.classical_epochs >= 1 and cfg.training.seed == 43
    with pytest.raises(ConfigError, match="smoke, cpu, paper"):
        get_budget("gpu")
    with pytest.raises(ConfigError, match="--semantics"):
        plan_cells("both")
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(2**0.5)) and mean_std([1.0, None]) == (None, None)


# --- hqdm evaluate ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unet_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained real U-Net checkpoint on the embedded MNIST subset, with a 10-step schedule."""
    torch.manual_seed(0)
    run_dir = tmp_path_factory.mktemp("run")
    return write_checkpoint(run_dir, build_model("unet"), step=3, epoch=1, dataset="embedded-mnist")


def test_evaluate_command_writes_json_and_table_line(
    unet_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--num-samples", "5", "--sampler", "ddim", "--steps", "2", "--metrics", "ssim,is"]
    code = main(["evaluate", str(unet_checkpoint.parent.parent), *args, "--batch-size", "2"])
    stdout = capsys.readouterr().out
    assert code == 0
    # default --out: next to the run's checkpoints/, not inside a checkpoint that may be pruned
    record = json.loads(
        (unet_checkpoint.parent.parent / "eval" / unet_checkpoint.name / "evaluation.json").read_text()
    )
    metrics = record["metrics"]
    assert metrics["num_generated"] == 5 and metrics["num_real"] == 5
    assert 0.0 < metrics["ssim"] <= 1.0
    assert metrics["is_mean"] is None and "inception_weights" in metrics["is_unavailable_reason"]
    assert record["settings"] == {
        "num_samples": 5, "sampler": "ddim", "steps": 2, "eta": 0.0, "metrics": ["ssim", "is"],
        "seed": 0, "batch_size": 2, "kid_subset_size": 100, "feature_precision": "fp32",
    }  # fmt: skip
    assert record["checkpoint"]["step"] == 3 and record["checkpoint"]["params_total"] == 483_321
    assert torch.__version__.startswith(record["versions"]["torch"])
    assert "| unet | paper | embedded-mnist | 3 | 1 | 5 | ddim2 |" in stdout and "| n/a |" in stdout


def test_commands_md_holds_a_valid_evaluate_command_per_run(
    smoke_table: tuple[Path, CountingFactory],
) -> None:
    out, _ = smoke_table
    lines = [
        line for line in (out / "commands.md").read_text().splitlines() if line.startswith("hqdm evaluate")
    ]
    assert len(lines) == 14
    args = build_parser().parse_args(
        shlex.split(lines[-1])[1:]
    )  # the last run: 7HQConv reference-code, seed 1
    assert Path(args.checkpoint) == out / "runs" / "7hq-reference-code" / "seed1"
    settings = EvalSettings(
        num_samples=args.num_samples,
        sampler=args.sampler,
        steps=args.steps,
        eta=args.eta,
        metrics=tuple(args.metrics.split(",")),
        seed=args.seed,
        batch_size=args.batch_size,
        kid_subset_size=args.kid_subset_size,
    )
    stored = json.loads((Path(args.out) / "evaluation.json").read_text())
    assert settings.as_dict() == stored["settings"]


def test_evaluate_rejects_bad_metric_names(unet_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", str(unet_checkpoint), "--metrics", "fid,lpips", "--num-samples", "2"])
    assert code == EXIT_USER_ERROR and "lpips" in capsys.readouterr().err


def test_samples_are_streamed_in_batches_with_fixed_noise() -> None:
    calls: list[int] = []

    class Recorder(TinyEps):
        def forward(self, x: Tensor, t: Tensor) -> Tensor:
            calls.append(x.shape[0])
            return super().forward(x, t)

    torch.manual_seed(0)
    model = Recorder(4).eval()
    cfg = config_from_dict({"diffusion": {"num_timesteps": 10}})
    settings = EvalSettings(num_samples=7, sampler="ddim", steps=2, batch_size=3, seed=5)
    stream = sample_batches(model, cfg, settings, image_shape=(1, 8, 8))
    first = next(stream)
    assert first.dtype == torch.uint8 and first.shape == (3, 1, 8, 8) and calls == [3, 3]  # lazy: 1 batch
    rest = list(stream)
    assert [b.shape[0] for b in rest] == [3, 1] and max(calls) == 3
    again = torch.cat(list(sample_batches(model, cfg, settings, image_shape=(1, 8, 8))))
    assert torch.equal(again, torch.cat([first, *rest]))


# --- hqdm reproduce --------------------------------------------------------------------------------


def test_reproduce_needs_a_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--budget", "smoke"]) == EXIT_USER_ERROR
    assert "--dataset" in capsys.readouterr().err


def test_reproduce_dispatches_chen2025(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[object, dict[str, object]]] = []
    fake = types.ModuleType("hqdm.experiments.chen2025")
    fake.reproduce_chen2025 = lambda out, **kw: calls.append((out, kw))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hqdm.experiments.chen2025", fake)
    argv = ["reproduce", "--paper", "chen2025", "--budget", "smoke", "--seeds", "3"]
    assert main([*argv, "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    assert main([*argv, "--dataset", "fashion-mnist"]) == 0
    assert calls == [
        (str(tmp_path / "o"), {"data_dir": str(tmp_path), "seeds": 3, "budget": "smoke"}),
        (
            "results/chen2025-smoke",
            {"data_dir": None, "seeds": 3, "budget": "smoke", "dataset": "fashion-mnist"},
        ),
    ]


def test_kid_subset_size_below_two_fails_before_any_sampling() -> None:
    with pytest.raises(ConfigError, match="--kid-subset-size: needs at least 2"):
        EvalSettings(kid_subset_size=0)
