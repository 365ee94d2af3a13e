"""Cells run as parallel processes (``hqdm study --workers``): concurrency, thread share, failures, logs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from hqdm.cli import build_parser
from hqdm.cli.experiments import _study_cell_argv
from hqdm.experiments.parallel_cells import Cell, default_threads, run_cells

# writes its marker, then waits up to 3 s for the other cell's marker: succeeds only if both run at once
MEET = (
    "import pathlib, sys, time\n"
    "me, other = map(pathlib.Path, sys.argv[1:])\n"
    "me.touch()\n"
    "end = time.monotonic() + 3\n"
    "while not other.exists() and time.monotonic() < end: time.sleep(0.05)\n"
    "sys.exit(0 if other.exists() else 1)\n"
)


def _meeting_cells(tmp_path: Path) -> list[Cell]:
    a, b = tmp_path / "a", tmp_path / "b"
    return [
        Cell(name, (sys.executable, "-c", MEET, str(me), str(other)), tmp_path / f"{name}.log")
        for name, me, other in (("first", a, b), ("second", b, a))
    ]


def test_workers_run_cells_at_the_same_time(tmp_path: Path) -> None:
    lines: list[str] = []
    assert (
        run_cells(_meeting_cells(tmp_path), workers=2, threads=1, log=lines.append, poll_seconds=0.05) == []
    )
    assert [line.split(":")[0] for line in lines if "started" in line] == ["first", "second"]
    assert sum("done in" in line for line in lines) == 2


def test_one_worker_runs_cells_in_turn_and_failures_are_named(tmp_path: Path) -> None:
    lines: list[str] = []
    failed = run_cells(_meeting_cells(tmp_path), workers=1, threads=1, log=lines.append, poll_seconds=0.05)
    assert [cell.name for cell in failed] == ["first"]  # it waited alone; the second found its marker
    assert any(
        "first: FAILED with exit code 1" in line and str(tmp_path / "first.log") in line for line in lines
    )


def test_each_cell_gets_its_thread_share_and_an_appended_log(tmp_path: Path) -> None:
    code = "import os; print(os.environ['OMP_NUM_THREADS'], os.environ['MKL_NUM_THREADS'])"
    cell = Cell("threads", (sys.executable, "-c", code), tmp_path / "logs" / "threads.log")
    for threads in (3, 2):
        assert run_cells([cell], workers=1, threads=threads, log=lambda _: None, poll_seconds=0.05) == []
    assert cell.log.read_text().split("\n")[:2] == ["3 3", "2 2"]


def test_default_threads_share_the_cores() -> None:
    assert [default_threads(w, cores=8) for w in (1, 2, 3, 16)] == [8, 4, 2, 1]
    with pytest.raises(ValueError, match="at least 1"):
        run_cells([], workers=0, threads=1)


def test_a_cell_command_carries_every_option_of_the_parent() -> None:
    parent = build_parser().parse_args(
        ["study", "--dataset", "fashion-mnist", "--models", "unet,qvunet-1hq", "--seeds", "0,1", "--data-dir",
         "D", "--out", "O", "--epochs", "3", "--eval-epochs", "1,3", "--num-samples", "50", "--steps", "7",
         "--precision", "fp32", "--fid-precision", "fp32", "--eta", "1", "--train-only", "--workers", "2",
         "--threads", "1"]
    )  # fmt: skip
    argv = _study_cell_argv(parent, "qvunet-1hq", 1)
    assert argv[:4] == (sys.executable, "-m", "hqdm", "study")
    child = build_parser().parse_args(list(argv[3:]))
    differ = {k for k in vars(parent) if k != "run" and getattr(parent, k) != getattr(child, k)}
    assert differ == {"models", "seeds", "workers", "threads"}
    assert (child.models, child.seeds, child.workers, child.threads) == ("qvunet-1hq", "1", 1, None)


def test_cached_test_features_are_the_ones_evaluations_look_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study's parent extracts the test split's features once; an evaluation with the same FID network
    precision must find that entry (no second file) instead of extracting again."""
    from hqdm.data.dataset import ImageDataset
    from hqdm.experiments import study
    from hqdm.metrics import evaluate_images

    images = torch.randint(
        0, 256, (3, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    fake = ImageDataset(images=images, labels=torch.zeros(3, dtype=torch.long), name="x", split="test")
    monkeypatch.setattr(study, "load_dataset", lambda *a, **k: fake)
    monkeypatch.setenv("HQDM_FID_STATS_DIR", str(tmp_path))
    study.cache_test_features("fashion-mnist", None, "bf16")
    cached = sorted(tmp_path.iterdir())
    assert len(cached) == 1
    evaluate_images(images[:2], images, metrics=("fid",), feature_precision="bf16", progress=False)
    assert sorted(tmp_path.iterdir()) == cached


def test_hardware_cells_run_one_setting_and_seed_each_costliest_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``hqdm hardware measure --workers``: one child per (setting, seed), noise levels with gate errors
    (the higher rate first, whatever order --noise lists them in) before shot counts (largest first)
    before the readout-only control before exact; each child is the parent's command with its own
    --shots/--noise/--seeds."""
    from hqdm.cli.experiments import _hardware_in_parallel
    from hqdm.experiments import parallel_cells
    from hqdm.experiments.hardware_settings import HardwareSettings, parse_shots

    parent = build_parser().parse_args(
        ["hardware", "measure", "CKPT", "--out", "O", "--shots", "4096,64,exact", "--noise",
         "random-readout,sycamore-2019,h2-2023", "--seeds", "0,1", "--eta", "1", "--num-samples", "10",
         "--steps", "3", "--fid-precision", "bf16", "--trajectories", "8", "--workers", "2", "--threads", "1"]
    )  # fmt: skip
    settings = HardwareSettings(
        shots=(4096, 64, None), noise_levels=("random-readout", "sycamore-2019", "h2-2023"), seeds=(0, 1)
    )
    started = []

    def fake_run_cells(cells, *, workers, threads):
        started.extend(cells)
        assert (workers, threads) == (2, 1)
        return cells[:1]

    monkeypatch.setattr(parallel_cells, "run_cells", fake_run_cells)
    failed = _hardware_in_parallel(parent, settings)
    assert [cell.name for cell in started] == [
        "sycamore-2019 seed 0", "sycamore-2019 seed 1", "h2-2023 seed 0", "h2-2023 seed 1",
        "shots-4096 seed 0", "shots-4096 seed 1", "shots-64 seed 0", "shots-64 seed 1",
        "random-readout seed 0", "random-readout seed 1", "exact seed 0", "exact seed 1",
    ]  # fmt: skip
    assert failed == started[:1]
    assert str(started[6].log).endswith("logs/shots-64-seed0.log")
    for cell in started:
        assert cell.argv[:5] == (sys.executable, "-m", "hqdm", "hardware", "measure")
        child = build_parser().parse_args(list(cell.argv[3:]))
        differ = {k for k in vars(parent) if k != "run" and getattr(parent, k) != getattr(child, k)}
        assert differ <= {"shots", "noise", "seeds", "workers", "threads"}
        one = HardwareSettings(
            shots=parse_shots(child.shots), noise_levels=tuple(n for n in child.noise.split(",") if n),
            seeds=(int(child.seeds),),
        )  # fmt: skip
        assert [f"{s.label} seed {child.seeds}" for s in one.settings()] == [cell.name]


def test_hardware_measure_reads_every_named_level_by_default() -> None:
    from hqdm.quantum.noise_levels import READOUT_LEVELS

    args = build_parser().parse_args(["hardware", "measure", "CKPT", "--out", "O"])
    assert args.noise.split(",") == list(READOUT_LEVELS)


def test_a_hardware_run_without_exact_in_its_shots_has_no_exact_cell() -> None:
    from hqdm.experiments.hardware_settings import HardwareSettings

    labels = [s.label for s in HardwareSettings(shots=(64,), noise_levels=()).settings()]
    assert labels == ["shots-64"]
    assert [s.label for s in HardwareSettings(shots=(None, 64)).settings()][:2] == ["exact", "shots-64"]
