"""Checkpoint writes that fail for lack of space: a named error, nothing half-written, a resume that works
once space is freed. Simulated by patching the writer, and for real on a small tmpfs where one can be
mounted (root on Linux)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor

import hqdm.train.checkpoint as checkpoint_module
from hqdm.train import StorageError, find_checkpoints, latest_checkpoint
from hqdm.train.checkpoint import verify_checkpoint
from test_train import make_cfg, run

REPO = Path(__file__).resolve().parents[1]


def _leftovers(run_dir: Path) -> list[str]:
    return [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]


def test_a_full_disk_is_named_leaves_nothing_half_written_and_resume_works_once_freed(
    tmp_path: Path,
    images: Tensor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    training = {"checkpoint_every": 2, "keep_last": 2}
    cfg = make_cfg(tmp_path / "r", training=training)
    run(cfg, images, max_steps=4)  # checkpoints at steps 2 and 4

    write = checkpoint_module._write_bytes

    def full_disk(path: Path, data: bytes) -> None:
        if path.name == "optimizer.pt":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        write(path, data)

    monkeypatch.setattr(checkpoint_module, "_write_bytes", full_disk)
    with pytest.raises(StorageError, match=r"the disk is full.*newest intact checkpoint is step_0000004"):
        run(cfg, images, resume=True)
    kept = find_checkpoints(cfg_dir := Path(cfg.output_dir))
    # step 2 was pruned before the write to make room (keep_last 2); step 4 is intact; no partial folder
    assert [p.name for p in kept] == ["step_0000004"] and verify_checkpoint(kept[0]) is None
    assert _leftovers(cfg_dir) == []

    monkeypatch.setattr(checkpoint_module, "_write_bytes", write)  # space freed
    resumed = run(cfg, images, resume=True)
    whole = run(make_cfg(tmp_path / "whole", training=training), images)
    assert resumed.state.step == whole.state.step == 10
    a = load_file(latest_checkpoint(resumed.run_dir) / "model.safetensors")
    b = load_file(latest_checkpoint(whole.run_dir) / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    return done.returncode == 0


def test_a_real_full_tmpfs_gives_a_one_line_error_and_resume_works_after_it_grows(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    if sys.platform != "linux" or not _mount_tmpfs(disk, "12m"):
        pytest.skip("needs to mount a tmpfs (root on Linux); the patched-writer test covers the logic")
    try:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        base = [
            sys.executable,
            "-m",
            "hqdm",
            "train",
            str(REPO / "configs" / "demo.yaml"),
            "--out",
            str(disk / "run"),
        ]
        sets = [
            "model.name=unet",
            "training.batch_size=2",
            "training.checkpoint_every=1",
            "training.keep_last=1",
        ]
        base += [arg for s in sets for arg in ("--set", s)]
        # a U-Net checkpoint is ~7.7 MB: step 1 fits on 12 MB, step 2 (written before step 1 goes) does not
        first = subprocess.run([*base, "--max-steps", "3"], capture_output=True, text=True, env=env)
        assert first.returncode == 2, first.stderr
        assert "StorageError: cannot write checkpoint" in first.stderr and "the disk is full" in first.stderr
        assert "Traceback" not in first.stderr and "step_0000001: free space" in first.stderr
        assert [p.name for p in find_checkpoints(disk / "run")] == ["step_0000001"]
        assert _leftovers(disk / "run") == []

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        again = subprocess.run(
            [*base, "--max-steps", "3", "--resume"], capture_output=True, text=True, env=env
        )
        assert again.returncode == 0, again.stderr
        assert [p.name for p in find_checkpoints(disk / "run")] == ["step_0000003"]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_other_writes_that_fail_for_space_or_permission_are_named_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hqdm.cli.errors import report_error

    report_error(OSError(errno.EROFS, os.strerror(errno.EROFS), "runs/x/log.csv"))
    err = capsys.readouterr().err
    assert err.startswith(
        "hqdm: error: StorageError: cannot write 'runs/x/log.csv': the folder is on a read-only"
    )
    assert "--resume" in err and len(err.splitlines()) == 1
    report_error(OSError(errno.EACCES, os.strerror(errno.EACCES), "runs/x"))  # Python's PermissionError
    assert capsys.readouterr().err.startswith(
        "hqdm: error: StorageError: cannot write 'runs/x': permission denied"
    )
    report_error(OSError(errno.ENOENT, os.strerror(errno.ENOENT), "missing.yaml"))  # not a storage fault
    assert capsys.readouterr().err.startswith("hqdm: error: FileNotFoundError: [Errno 2] No such file")
