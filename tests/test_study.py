"""``hqdm study``: cells trained epoch by epoch, kept EMA weights, per-epoch evaluation, skip-on-rerun.

Small stand-in models (those of test_reproduce) and a 4-feature stand-in for the Inception network."""

from __future__ import annotations

import csv
import shutil
import statistics
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import PixelStats
from hqdm.cli import main
from hqdm.config import ConfigError
from hqdm.experiments.evaluate_checkpoint import EvalSettings
from hqdm.experiments.study import StudySettings, run_study
from test_reproduce import CountingFactory, refuse_models

SETTINGS = StudySettings(
    epochs=2,
    eval_epochs=(1, 2),
    grid_epochs=(1,),
    batch_size=8,
    precision="fp32",
    train_subset=16,
    evaluation=EvalSettings(
        num_samples=8, sampler="ddim", steps=2, metrics=("fid", "kid"), batch_size=8, kid_subset_size=4
    ),
)
REAL = torch.randint(0, 256, (12, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))


def _study(
    out: Path, factory, models=("unet", "qvunet-1hq"), settings=SETTINGS, train_only=False, log=lambda _: None
) -> Path:
    return run_study(
        "embedded-mnist", models, (0,), out, settings=settings, real_images=REAL, model_factory=factory,
        feature_extractor=PixelStats(), progress=False, train_only=train_only, log=log,
    )  # fmt: skip


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_study_evaluates_every_epoch_keeps_weights_and_skips_finished_work(tmp_path: Path) -> None:
    metrics = _study(tmp_path, CountingFactory())
    rows = _rows(metrics)
    assert [(r["model"], r["epoch"], r["step"]) for r in rows] == [
        ("qvunet-1hq", "1", "2"), ("qvunet-1hq", "2", "4"), ("unet", "1", "2"), ("unet", "2", "4"),
    ]  # fmt: skip
    assert {(r["real_split"], r["num_generated"], r["num_real"], r["sampler"]) for r in rows} == {
        ("test", "8", "12", "ddim2")
    }
    assert all(float(r["fid"]) >= 0 for r in rows)
    run = tmp_path / "runs" / "unet" / "seed0"
    for epoch in (1, 2):
        kept = run / "epochs" / f"epoch_{epoch:03d}"
        names = ["config.json", "ema.safetensors", "model.safetensors", "state.json"]
        assert sorted(p.name for p in kept.iterdir()) == names
    assert (run / "samples" / "epoch_001.png").is_file() and not (run / "samples" / "epoch_002.png").exists()
    assert "| unet |" in (tmp_path / "report.md").read_text() and (tmp_path / "fid_vs_epoch.png").is_file()

    _study(tmp_path, refuse_models)  # everything finished: no model is built again

    # a lost evaluation is redone from the kept EMA weights, without training again
    log_before = (run / "log.csv").read_bytes()
    shutil.rmtree(run / "eval" / "epoch_002")
    factory = CountingFactory()
    _study(tmp_path, factory)
    assert factory.built == ["unet"]  # the evaluation's model only
    assert (run / "log.csv").read_bytes() == log_before
    assert len(_rows(metrics)) == 4


def test_train_only_keeps_epochs_and_a_later_run_evaluates_them_without_training(tmp_path: Path) -> None:
    metrics = _study(tmp_path, CountingFactory(), models=("unet",), train_only=True)
    run = tmp_path / "runs" / "unet" / "seed0"
    assert sorted(p.name for p in (run / "epochs").iterdir()) == ["epoch_001", "epoch_002"]
    assert not (run / "eval").exists() and not metrics.exists()

    log_before = (run / "log.csv").read_bytes()
    factory = CountingFactory()
    rows = _rows(_study(tmp_path, factory, models=("unet",)))
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", "2"), ("2", "4")]
    assert factory.built == ["unet", "unet"]  # one model per evaluation, none for training
    assert (run / "log.csv").read_bytes() == log_before


def test_a_cell_trains_to_its_end_then_scores_the_last_epoch_first(tmp_path: Path) -> None:
    """Training comes first (it must finish within a session); then the headline score, the last epoch."""
    settings = replace(SETTINGS, epochs=3, eval_epochs=(1, 2, 3))
    said: list[str] = []
    _study(tmp_path, CountingFactory(), models=("unet",), settings=settings, log=said.append)
    steps = [line.removeprefix("unet seed 0: ") for line in said if line.startswith("unet seed 0: ")]
    assert steps == [
        "training to epoch 1", "training to epoch 2", "training to epoch 3",
        "evaluating the EMA weights of epoch 3", "evaluating the EMA weights of epoch 1",
        "evaluating the EMA weights of epoch 2",
    ]  # fmt: skip


def test_paired_seed_gives_the_same_evaluation_again(tmp_path: Path) -> None:
    """Seed 0 fixes initial weights, data order and sampling noise: two studies agree number for number."""
    first = _rows(_study(tmp_path / "a", CountingFactory(), models=("unet",)))
    second = _rows(_study(tmp_path / "b", CountingFactory(), models=("unet",)))
    assert [r["fid"] for r in first] == [r["fid"] for r in second]


def test_eval_epochs_must_include_the_last_epoch() -> None:
    with pytest.raises(ConfigError, match="must include the last epoch"):
        StudySettings(epochs=3, eval_epochs=(1, 2), grid_epochs=(1,))
    with pytest.raises(ConfigError, match=r"outside 1\.\.2"):
        StudySettings(epochs=2, eval_epochs=(2, 5))


def test_study_command_rejects_bad_seed_lists(capsys) -> None:
    assert main(["study", "--dataset", "mnist", "--seeds", "0,x"]) == 2
    assert "--seeds: expected comma-separated whole numbers" in capsys.readouterr().err


def test_report_pairs_seeds_and_gives_t_intervals_and_verdicts(tmp_path: Path) -> None:
    from scipy.stats import t

    from hqdm.experiments.study_report import paired_comparison, write_report

    fid = {("unet", s, 1): v for s, v in enumerate([300.0, 310.0, 305.0])}
    fid |= {("qvunet-1hq", s, 1): v for s, v in enumerate([290.0, 303.0, 296.0])}  # ahead by 10, 7, 9
    fid |= {("qvunet-1hq-twin", s, 1): v for s, v in enumerate([320.0, 301.0, 330.0])}  # +20, -9, +25
    fid |= {("quanvunet", 0, 1): 280.0}
    ahead = paired_comparison("qvunet-1hq", 1, fid)
    half = t.ppf(0.975, 2) * statistics.stdev([-10.0, -7.0, -9.0]) / 3**0.5
    assert ahead.mean == pytest.approx(-26 / 3) and ahead.high == pytest.approx(-26 / 3 + half)
    assert ahead.verdict == "ahead"
    assert paired_comparison("qvunet-1hq-twin", 1, fid).verdict == "no difference shown"
    assert paired_comparison("quanvunet", 1, fid).verdict == "one seed: no interval"
    assert paired_comparison("qvunet-1hq", 2, fid) is None
    behind = {**fid, **{("qvunet-1hq", s, 1): v + 30 for (m, s, e), v in fid.items() if m == "unet"}}
    assert paired_comparison("qvunet-1hq", 1, behind).verdict == "behind"

    header = "weights,model,seed,epoch,fid,kid_mean,num_generated,num_real,real_split,sampler,precision"
    header += ",fid_precision,params"
    lines = [header] + [
        f"ema,{m},{s},{e},{v},0.1,8,12,test,ddim2,bf16,bf16,100" for (m, s, e), v in fid.items()
    ]
    (tmp_path / "metrics.csv").write_text("\n".join(lines) + "\n")
    report = write_report(tmp_path, "fashion-mnist", tmp_path / "metrics.csv").read_text()
    assert "| qvunet-1hq | 100 | 1 | 3 | 296.33 ± 6.51 |" in report
    assert f"| {-26 / 3:+.2f} [{-26 / 3 - half:+.2f}, {-26 / 3 + half:+.2f}] | ahead |" in report
    assert (tmp_path / "fid_vs_epoch.png").stat().st_size > 1000
    circuits = [-30.0, 2.0, -34.0]  # the 1HQConv QVU-Net minus its classical twin, seeds 0-2
    mean, half = statistics.fmean(circuits), t.ppf(0.975, 2) * statistics.stdev(circuits) / 3**0.5
    row = f"| qvunet-1hq | qvunet-1hq-twin | 1 | 3 | {mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}] |"
    assert row + " no difference shown |" in report
    assert "| qvunet-1hq | quanvunet |" not in report  # only registered controls are paired with a hybrid


def test_one_folder_holds_one_evaluation_protocol(tmp_path: Path) -> None:
    """Epochs scored with DDIM eta 1 are labelled so in metrics.csv; asking the same folder for eta 0
    afterwards is a named error, not a silent skip that would mix two samplers in one table."""
    eta1 = replace(SETTINGS, evaluation=replace(SETTINGS.evaluation, eta=1.0))
    rows = _rows(_study(tmp_path, CountingFactory(), models=("unet",), settings=eta1))
    assert {r["sampler"] for r in rows} == {"ddim2-eta1"}
    with pytest.raises(ConfigError, match=r"eta 1.0 -> 0.0\); one study folder holds one protocol"):
        _study(tmp_path, refuse_models, models=("unet",))


def test_no_ema_scores_the_kept_online_weights_beside_the_ema_scores(tmp_path: Path) -> None:
    """``use_ema=False`` samples ``model.safetensors`` of each kept epoch into ``eval-online/``, without
    training; metrics.csv and the report keep the two kinds of weights apart, each paired within itself.
    An epoch kept before online weights were kept is skipped with a message, not an error."""
    _study(tmp_path, CountingFactory(), models=("unet",))
    run = tmp_path / "runs" / "unet" / "seed0"
    (run / "epochs" / "epoch_001" / "model.safetensors").unlink()
    # this short a run has EMA weights equal to the online ones (EMA warm-up): make the online ones differ
    online = run / "epochs" / "epoch_002" / "model.safetensors"
    save_file({name: 2 * value for name, value in load_file(online).items()}, online)
    messages: list[str] = []
    factory = CountingFactory()
    metrics = run_study(
        "embedded-mnist", ("unet",), (0,), tmp_path, settings=replace(SETTINGS, use_ema=False),
        real_images=REAL, model_factory=factory, feature_extractor=PixelStats(), progress=False,
        log=messages.append,
    )  # fmt: skip
    assert factory.built == ["unet"]  # epoch 2's online weights only
    assert "unet seed 0: epoch 1 was kept without its online weights; skipped" in messages
    rows = _rows(metrics)
    assert [(r["weights"], r["epoch"]) for r in rows] == [("ema", "1"), ("ema", "2"), ("online", "2")]
    assert rows[1]["fid"] != rows[2]["fid"]  # the online weights are not the EMA weights
    assert (run / "eval-online" / "epoch_002" / "evaluation.json").is_file()
    report = (tmp_path / "report.md").read_text()
    assert report.index("## EMA weights") < report.index("## Online weights")
    assert (
        f"| unet | {rows[2]['params']} | 2 | 1 | {float(rows[2]['fid']):.2f} |"
        in report.split("## Online")[1]
    )
