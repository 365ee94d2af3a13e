"""Command-line smoke tests: listing models, named errors with exit code 2, sampling (the demo: test_demo)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_checkpoint
from hqdm.cli import EXIT_BROKEN_PIPE, EXIT_USER_ERROR, main
from hqdm.models import build_model
from hqdm.train import read_state
from hqdm.train.io import make_grid


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_lists_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    assert "unet" in out and "qvunet-1hq" in out and "483,321" in out


def test_only_a_successful_command_leaves_the_process_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import hqdm.train.distributed as distributed

    calls: list[None] = []
    monkeypatch.setattr(distributed, "leave_process_group", lambda: calls.append(None) or False)
    assert run_cli(capsys, "models")[0] == 0 and len(calls) == 1
    # a failed command skips the barrier, which the failed rank would never reach
    code = run_cli(capsys, "train", str(tmp_path / "missing.yaml"))[0]
    assert code == EXIT_USER_ERROR and len(calls) == 1


def test_a_rank_that_left_its_group_exits_without_teardown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import hqdm.train.distributed as distributed

    def exit_now(code: int) -> None:
        raise SystemExit(f"exited with {code}")

    monkeypatch.setattr(distributed, "leave_process_group", lambda: True)
    monkeypatch.setattr(distributed, "exit_without_teardown", exit_now)
    with pytest.raises(SystemExit, match="exited with 0"):
        run_cli(capsys, "models")


def test_every_command_first_keeps_freed_memory_in_the_process(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import hqdm.train.memory as memory

    calls: list[None] = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append(None) or True)
    assert run_cli(capsys, "models")[0] == 0 and len(calls) == 1


# In a fresh process (hqdm.train.memory loaded from its file, without torch), allocates and frees 24 MiB
# with the C library and reports from mallinfo2 (glibc >= 2.33) whether the block got its own mapping and
# how much freed memory the heap kept at its top.
MALLOC_PROBE = """
import ctypes, importlib.util, json, os, sys
package = importlib.util.find_spec("hqdm").submodule_search_locations[0]
spec = importlib.util.spec_from_file_location("memory", os.path.join(package, "train", "memory.py"))
memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(memory)
fields = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
Mallinfo2 = type("Mallinfo2", (ctypes.Structure,), {"_fields_": [(f, ctypes.c_size_t) for f in fields]})
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
returned = memory.keep_freed_memory() if sys.argv[1] == "set" else None
before = libc.mallinfo2().hblkhd
block = libc.malloc(24 << 20)
mapped = libc.mallinfo2().hblkhd - before
libc.free(block)
print(json.dumps({"returned": returned, "mapped": mapped, "kept": libc.mallinfo2().keepcost}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_sets_the_glibc_thresholds() -> None:
    """With the setting a 24 MiB block comes from the heap (mmap threshold 32 MiB) and stays there once
    freed (trim threshold 1 GiB); with glibc's defaults it gets its own mapping."""
    import json

    def probe(mode: str) -> dict:
        done = subprocess.run(
            [sys.executable, "-c", MALLOC_PROBE, mode],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(done.stdout)

    default, kept = probe("default"), probe("set")
    assert default["mapped"] >= 24 << 20  # the control: glibc maps a block this large by default
    assert kept == {"returned": True, "mapped": 0, "kept": kept["kept"]} and kept["kept"] >= 24 << 20


def test_a_reader_that_stops_early_ends_the_command_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``hqdm models | head -1``: once the reader has gone, the command stops with SIGPIPE's exit code and
    no error line, and what is left in stdout's buffer goes nowhere."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has already left
    with open(write_end, "w", buffering=1) as closed_pipe:  # line-buffered: the first line hits the pipe
        monkeypatch.setattr(sys, "stdout", closed_pipe)
        assert main(["models"]) == EXIT_BROKEN_PIPE
        print("written after the pipe broke")  # stdout now leads to /dev/null: no second error
    assert capsys.readouterr().err == ""


def test_bad_config_key_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("model: {name: unet}\ntraining: {epoch: 3}\n")
    code, _, err = run_cli(capsys, "train", str(config), "--out", str(tmp_path / "run"))
    assert code == EXIT_USER_ERROR
    assert "training.epoch" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_bad_override_and_missing_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "ok.yaml"
    config.write_text("model: {name: unet}\n")
    code, _, err = run_cli(
        capsys, "train", str(config), "--set", "model.name=unet9", "--out", str(tmp_path / "r")
    )
    assert code == EXIT_USER_ERROR and "model.name" in err
    code, _, err = run_cli(capsys, "train", str(tmp_path / "missing.yaml"))
    assert code == EXIT_USER_ERROR and "missing.yaml" in err
    code, _, err = run_cli(capsys, "sample", str(tmp_path / "nothing"), "--out", str(tmp_path / "s"))
    assert code == EXIT_USER_ERROR and "CheckpointError" in err
    code, _, err = run_cli(
        capsys, "train", str(config), "--data-dir", str(tmp_path), "--out", str(tmp_path / "r")
    )
    assert code == EXIT_USER_ERROR and "DatasetNotFoundError" in err
    assert not (tmp_path / "r").exists()


def test_resume_without_checkpoint_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "ok.yaml"
    config.write_text("model: {name: unet}\ndata: {dataset: embedded-mnist, subset: 8}\n")
    code, _, err = run_cli(capsys, "train", str(config), "--resume", "--out", str(tmp_path / "r"))
    assert code == EXIT_USER_ERROR and "nothing to resume" in err


def test_train_stops_and_resumes_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(
        "model: {name: unet}\n"
        "data: {dataset: embedded-mnist, subset: 4}\n"
        "training: {batch_size: 2, epochs: 1, grid_epochs: [], device: cpu}\n"
    )
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "train", str(config), "--out", str(out), "--max-steps", "1")
    assert code == 0 and "stopped at step 1" in stdout
    code, _, err = run_cli(capsys, "train", str(config), "--out", str(out))
    assert code == EXIT_USER_ERROR and "--resume" in err
    code, stdout, _ = run_cli(capsys, "train", str(config), "--out", str(out), "--resume")
    assert code == 0 and "training finished" in stdout
    assert read_state(out / "checkpoints" / "step_0000002")[0].epoch == 1
    assert (out / "config.json").is_file() and (out / "log.csv").is_file()


@pytest.fixture(scope="module")
def unet_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real U-Net checkpoint (untrained) with a 10-step schedule, written by save_checkpoint."""
    torch.manual_seed(0)
    return write_checkpoint(tmp_path_factory.mktemp("run"), build_model("unet"))


@pytest.mark.parametrize(("sampler", "extra"), [("ddim", ["--steps", "2", "--eta", "0.5"]), ("ddpm", [])])
def test_sample_writes_png_and_npz(
    unet_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], sampler: str, extra: list[str]
) -> None:
    out = tmp_path / sampler
    args = ["sample", str(unet_checkpoint.parent.parent), "-n", "3", "--sampler", sampler, *extra]
    code, stdout, _ = run_cli(capsys, *args, "--out", str(out), "--seed", "1")
    assert code == 0 and str(out / "samples.png") in stdout
    assert (out / "samples.png").read_bytes()[:4] == b"\x89PNG"
    with np.load(out / "samples.npz") as npz:
        images = npz["images"]
    assert images.dtype == np.uint8 and images.shape == (3, 1, 28, 28)
    assert sorted(p.name for p in out.iterdir()) == ["samples.npz", "samples.png"]  # no temporaries left
    grid = np.asarray(Image.open(out / "samples.png").convert("L"))
    expected = make_grid(images).repeat(2, axis=0).repeat(2, axis=1)  # the PNG is the npz's images, 2x
    assert np.array_equal(grid, expected)


def test_sample_images_follow_the_seed_and_the_sampler(
    unet_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def draw(name: str, *args: str) -> np.ndarray:
        run = ["sample", str(unet_checkpoint.parent.parent), "-n", "2", *args, "--out", str(tmp_path / name)]
        assert run_cli(capsys, *run)[0] == 0
        with np.load(tmp_path / name / "samples.npz") as npz:
            return npz["images"]

    ddim = ("--sampler", "ddim", "--steps", "3")
    first = draw("a", *ddim, "--seed", "1")
    assert np.array_equal(first, draw("b", *ddim, "--seed", "1"))
    assert not np.array_equal(first, draw("c", *ddim, "--seed", "2"))
    assert not np.array_equal(first, draw("d", "--sampler", "ddpm", "--seed", "1"))


def test_data_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "data", "check", "embedded-mnist")
    assert code == 0 and "OK" in out
    code, out, _ = run_cli(capsys, "data", "check", "mnist", "--data-dir", str(tmp_path))
    assert code == EXIT_USER_ERROR and "PROBLEMS" in out


def test_python_dash_m_entry_point_reports_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "hqdm", "train", str(tmp_path / "none.yaml")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == EXIT_USER_ERROR
    assert proc.stderr.startswith("hqdm: error: ConfigError:") and "Traceback" not in proc.stderr


def test_reproduce_chen2025_rejects_bad_digits(capsys: pytest.CaptureFixture[str]) -> None:
    for digits, message in (("0,x", "comma-separated digits"), ("3,12", "0..9")):
        code, _, err = run_cli(capsys, "reproduce", "--paper", "chen2025", "--digits", digits)
        assert code == EXIT_USER_ERROR and "--digits" in err and message in err


@pytest.mark.parametrize("rounds", ["0", "-2", "two"])
def test_bench_rounds_must_be_a_positive_whole_number(
    rounds: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "train-step", "--rounds", rounds, "--models", "unet"])
    assert exit_info.value.code == 2
    assert "--rounds: must be a whole number of at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "configs/demo.yaml", "--max-steps", "0"],
        ["train", "configs/demo.yaml", "--max-steps", "-1"],
        ["demo", "--train-minutes", "-5"],
        ["demo", "--train-minutes", "nan"],
        ["demo", "--train-steps", "0"],
        ["demo", "-n", "0"],
    ],
)
def test_zero_or_negative_limits_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert "must be" in capsys.readouterr().err


def test_a_training_stopped_by_a_signal_exits_130_and_says_where_it_stopped(monkeypatch, tmp_path, capsys):
    """The trainer raises TrainingInterrupted after saving (tests/test_train.py); the command reports the
    step and checkpoint and how to continue, with no traceback."""
    import hqdm.train
    from hqdm.train.stopping import TrainingInterrupted

    class Stopped:
        state = type("State", (), {"step": 42})()
        final_checkpoint = tmp_path / "checkpoints" / "step_00000042"

    def stopped(*args, **kwargs):
        raise TrainingInterrupted(Stopped())

    monkeypatch.setattr(hqdm.train, "train", stopped)
    code = main(["train", "configs/demo.yaml", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 130
    assert "stopped at step 42" in err and "step_00000042" in err and "--resume" in err
    assert "Traceback" not in err
