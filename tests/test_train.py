"""Training loop: determinism, bit-exact resume, NaN stop, transfer learning, checkpoints, sampling.

A tiny stand-in model (a few hundred parameters, 8x8 images) replaces the real U-Nets through the
``model_factory`` hook, so each run takes well under a second.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from conftest import checkpoint_tensors
from hqdm.config import Config, ModelConfig, config_from_dict
from hqdm.precision import MixedPrecisionModel, autocast
from hqdm.train import (
    CheckpointError,
    NonFiniteLossError,
    RunDirError,
    find_checkpoints,
    latest_checkpoint,
    read_state,
    sample_to_folder,
    train,
    transfer_weights,
)
from hqdm.train.generate import load_checkpoint_model
from hqdm.train.logs import read_log
from hqdm.train.stopping import StopRequests, TrainingInterrupted

T = 50


class Tiny(nn.Module):
    """eps-model with an ``inp``/``mid``/``out`` layout like the U-Nets (vertex keys start with ``mid.``)."""

    def __init__(self, mid_width: int = 4) -> None:
        super().__init__()
        self.inp = nn.Conv2d(1, 4, 3, padding=1)
        self.temb = nn.Embedding(T, 4)
        self.mid = nn.Sequential(nn.Conv2d(4, mid_width, 1), nn.SiLU(), nn.Conv2d(mid_width, 4, 1))
        self.out = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h = self.inp(x) + self.temb(t)[:, :, None, None]
        return self.out(h + self.mid(h))


class NaNAfter(Tiny):
    """Returns NaN from its ``nan_from``-th training forward on (1-based)."""

    def __init__(self, nan_from: int) -> None:
        super().__init__()
        self.nan_from, self.calls = nan_from, 0

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        out = super().forward(x, t)
        if self.training:
            self.calls += 1
            if self.calls >= self.nan_from:
                return out * float("nan")
        return out


def tiny_factory(model: ModelConfig) -> nn.Module:
    # "unet" plays the classical model, every other name a "hybrid" whose vertex has another shape
    return Tiny(4 if model.name == "unet" else 6)


def make_cfg(out: Path, **sections: dict) -> Config:
    raw = {
        "model": {"name": "unet"},
        "diffusion": {"num_timesteps": T},
        "training": {
            "batch_size": 4,
            "epochs": 2,
            "seed": 7,
            "grid_epochs": [],
            "checkpoint_every": 3,
            "keep_last": 10,
            "device": "cpu",
            "log_every": 2,
        },
        "sampling": {"sampler": "ddim", "steps": 3, "num_images": 4},
        "output_dir": str(out),
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return config_from_dict(raw, check_names=False)  # names are stand-ins for Tiny; see test_config.py


def run(cfg: Config, images: Tensor, **kwargs):
    return train(cfg, images=images, model_factory=tiny_factory, progress=False, **kwargs)


def assert_identical(a: Path, b: Path) -> None:
    ta, tb = checkpoint_tensors(a), checkpoint_tensors(b)
    assert ta.keys() == tb.keys()
    unequal = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not unequal, f"tensors differ: {unequal}"


class Interrupt(Exception):
    pass


def interrupt_at(step: int):
    def hook(current: int, loss: float) -> None:
        if current == step:
            raise Interrupt

    return hook


def test_same_seed_gives_identical_weights_and_other_seed_does_not(tmp_path: Path, images: Tensor) -> None:
    a = run(make_cfg(tmp_path / "a"), images)
    b = run(make_cfg(tmp_path / "b"), images)
    c = run(make_cfg(tmp_path / "c", training={"seed": 8}), images)
    assert a.completed and a.state.step == 10
    assert_identical(a.final_checkpoint, b.final_checkpoint)
    ta, tc = checkpoint_tensors(a.final_checkpoint), checkpoint_tensors(c.final_checkpoint)
    assert not torch.equal(ta["model/out.weight"], tc["model/out.weight"])


def test_interrupted_mid_epoch_then_resumed_equals_uninterrupted(tmp_path: Path, images: Tensor) -> None:
    full = run(make_cfg(tmp_path / "full"), images)
    cfg = make_cfg(tmp_path / "cut")
    with pytest.raises(Interrupt):
        run(cfg, images, on_step=interrupt_at(8))  # last checkpoint: step 6 = epoch 2, batch 1
    state, _ = read_state(latest_checkpoint(cfg_dir := Path(cfg.output_dir)))
    assert (state.step, state.epoch, state.batch) == (6, 1, 1)
    resumed = run(cfg, images, resume=True)
    assert resumed.completed and resumed.state.step == 10
    assert_identical(full.final_checkpoint, resumed.final_checkpoint)
    # the log reads as if never interrupted: same steps and losses
    assert [(r.step, r.loss) for r in read_log(cfg_dir / "log.csv")] == [
        (r.step, r.loss) for r in read_log(full.run_dir / "log.csv")
    ]


def test_sigterm_stops_after_the_step_with_its_checkpoint_and_resumes_exactly(
    tmp_path: Path, images: Tensor
) -> None:
    """SIGTERM during step 8 (periodic checkpoints at 3 and 6): the run finishes that step, saves step 8,
    and raises TrainingInterrupted; the resumed run equals the uninterrupted one, and the signal's usual
    meaning is back afterwards."""
    full = run(make_cfg(tmp_path / "full"), images)
    cfg = make_cfg(tmp_path / "stopped")

    def terminate_at(current: int, loss: float) -> None:
        if current == 8:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match="stopped at step 8") as stopped:
        run(cfg, images, on_step=terminate_at)
    assert signal.getsignal(signal.SIGTERM) is before
    assert stopped.value.result.state.step == 8
    state, _ = read_state(latest_checkpoint(Path(cfg.output_dir)))
    assert (state.step, state.epoch, state.batch) == (8, 1, 3)
    resumed = run(cfg, images, resume=True)
    assert resumed.completed and resumed.state.step == 10
    assert_identical(full.final_checkpoint, resumed.final_checkpoint)


def test_a_second_stop_signal_interrupts_at_once() -> None:
    with StopRequests() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_killed_subprocess_is_resumable(tmp_path: Path, images: Tensor) -> None:
    """A hard kill (no cleanup at all) right after a step, simulated by os._exit in the hook."""
    import multiprocessing as mp

    cfg = make_cfg(tmp_path / "killed")
    ctx = mp.get_context("fork")
    proc = ctx.Process(target=_train_and_die, args=(cfg, images, 5))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 17
    # The forked child runs single-threaded (OpenMP does not survive fork); bit-exactness needs the same
    # reduction order, so the runs compared with it use one thread too.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = run(cfg, images, resume=True)
        full = run(make_cfg(tmp_path / "full"), images)
    finally:
        torch.set_num_threads(threads)
    assert_identical(full.final_checkpoint, resumed.final_checkpoint)


def _train_and_die(cfg: Config, images: Tensor, step: int) -> None:
    import os

    def hook(current: int, loss: float) -> None:
        if current == step:
            os._exit(17)

    torch.set_num_threads(1)
    run(cfg, images, on_step=hook)


def test_fresh_run_refuses_a_directory_with_checkpoints(tmp_path: Path, images: Tensor) -> None:
    cfg = make_cfg(tmp_path / "r", training={"epochs": 1})
    run(cfg, images)
    with pytest.raises(RunDirError, match="--resume"):
        run(cfg, images)


def test_checkpoints_keep_last_and_leave_no_temporaries(tmp_path: Path, images: Tensor) -> None:
    result = run(make_cfg(tmp_path / "r", training={"keep_last": 2}), images)
    kept = find_checkpoints(result.run_dir)
    assert [p.name for p in kept] == ["step_0000009", "step_0000010"]
    assert sorted(p.name for p in (result.run_dir / "checkpoints").iterdir()) == [p.name for p in kept]
    assert {p.name for p in kept[-1].iterdir()} == {
        "model.safetensors",
        "ema.safetensors",
        "optimizer.pt",
        "rng.pt",
        "state.json",
        "config.json",
        "manifest.json",
    }


def test_run_outputs_log_plot_grids_and_config(tmp_path: Path, images: Tensor) -> None:
    result = run(make_cfg(tmp_path / "r", training={"grid_epochs": [1, 2]}), images)
    rows = read_log(result.run_dir / "log.csv")
    # every log_every=2 steps plus the last step of each epoch (5 and 10)
    assert [r.step for r in rows] == [2, 4, 5, 6, 8, 10]
    assert [r.epoch for r in rows] == [1, 1, 1, 2, 2, 2]
    assert all(np.isfinite(r.loss) and r.images_per_s > 0 for r in rows)
    assert [p.name for p in result.grids] == ["epoch_001.png", "epoch_002.png"]
    for path in [*result.grids, result.loss_plot]:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any((result.run_dir / "tensorboard").iterdir())
    assert '"seed": 7' in (result.run_dir / "config.json").read_text()


def test_nan_loss_stops_with_step_and_keeps_last_checkpoint(tmp_path: Path, images: Tensor) -> None:
    cfg = make_cfg(tmp_path / "nan")
    with pytest.raises(NonFiniteLossError, match="step 7"):
        train(cfg, images=images, model_factory=lambda model: NaNAfter(7), progress=False)
    last = latest_checkpoint(Path(cfg.output_dir))
    assert last.name == "step_0000006"
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in last.iterdir()}
    assert all(torch.isfinite(v).all() for v in checkpoint_tensors(last).values())
    # nothing was written after the bad step
    assert [p.name for p in find_checkpoints(Path(cfg.output_dir))][-1] == "step_0000006"
    assert before == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in last.iterdir()}


def test_max_steps_stops_early_with_a_checkpoint(tmp_path: Path, images: Tensor) -> None:
    result = run(make_cfg(tmp_path / "r"), images, max_steps=4)
    assert not result.completed
    assert result.final_checkpoint.name == "step_0000004"


# --- transfer learning ---------------------------------------------------------------------------


def transfer_cfg(out: Path) -> Config:
    return make_cfg(
        out,
        training={"epochs": 3},
        transfer={"enabled": True, "classical_epochs": 2, "finetune_epochs": 1, "target_model": "qvunet-1fq"},
    )


def test_transfer_weights_copies_all_but_the_vertex() -> None:
    source, target = Tiny(4), Tiny(6)
    before_mid = {k: v.clone() for k, v in target.state_dict().items() if k.startswith("mid.")}
    report = transfer_weights(source, target)
    assert sorted(report.copied) == sorted(k for k in source.state_dict() if not k.startswith("mid."))
    assert sorted(report.excluded) == sorted(before_mid)
    for key in report.copied:
        assert torch.equal(target.state_dict()[key], source.state_dict()[key])
    for key, value in before_mid.items():
        assert torch.equal(target.state_dict()[key], value)
    # without the exclusion the shape check still keeps mismatching vertex tensors out
    report = transfer_weights(Tiny(4), Tiny(6), exclude_prefixes=())
    assert "mid.0.weight" in report.shape_mismatch and "mid.2.bias" in report.copied


def test_transfer_phase_runs_and_trains_the_vertex(tmp_path: Path, images: Tensor) -> None:
    result = run(transfer_cfg(tmp_path / "tl"), images)
    assert result.completed and result.state.step == 15 and result.state.phase == 1
    assert result.state.model_name == "qvunet-1fq" and result.state.phase_start_step == 10
    report = (result.run_dir / "transfer.json").read_text()
    assert '"inp.weight"' in report and '"mid.0.weight"' in report
    final = load_file(result.final_checkpoint / "model.safetensors")
    assert final["mid.0.weight"].shape == (6, 4, 1, 1)
    torch.manual_seed(7 + 1)  # the target model's initialisation seed (seed + phase)
    fresh = Tiny(6)
    # the fine-tune updated the vertex
    assert not torch.equal(final["mid.0.weight"], fresh.mid[0].weight.detach())
    classical = load_file(result.run_dir / "checkpoints" / "step_0000010" / "model.safetensors")
    assert not torch.equal(final["inp.weight"], classical["inp.weight"])  # and the transferred layers


def test_transfer_resumes_across_the_phase_boundary(tmp_path: Path, images: Tensor) -> None:
    full = run(transfer_cfg(tmp_path / "full"), images)
    cfg = transfer_cfg(tmp_path / "cut")
    with pytest.raises(Interrupt):
        run(cfg, images, on_step=interrupt_at(11))  # last checkpoint: end of the classical phase
    assert read_state(latest_checkpoint(Path(cfg.output_dir)))[0].phase == 0
    resumed = run(cfg, images, resume=True)
    assert_identical(full.final_checkpoint, resumed.final_checkpoint)


# --- sampling ------------------------------------------------------------------------------------


def test_sample_checkpoint_writes_png_and_uint8_npz(tmp_path: Path, images: Tensor) -> None:
    result = run(make_cfg(tmp_path / "r", training={"epochs": 1}), images)
    out = sample_to_folder(
        result.run_dir,
        tmp_path / "s",
        num_images=5,
        sampler="ddim",
        steps=3,
        seed=1,
        model_factory=tiny_factory,
    )
    with np.load(out.npz) as npz:
        samples = npz["images"]
    assert samples.dtype == np.uint8 and samples.shape == (5, 1, 28, 28)
    assert out.png.read_bytes()[:4] == b"\x89PNG"
    again = sample_to_folder(
        result.run_dir,
        tmp_path / "s2",
        num_images=5,
        sampler="ddim",
        steps=3,
        seed=1,
        model_factory=tiny_factory,
    )
    with np.load(again.npz) as npz:
        assert np.array_equal(npz["images"], samples)


def test_resume_redraws_a_grid_lost_with_the_process(tmp_path: Path, images: Tensor) -> None:
    result = run(make_cfg(tmp_path / "r", training={"grid_epochs": [2]}), images)
    grid = result.run_dir / "samples" / "epoch_002.png"
    first = grid.read_bytes()
    grid.unlink()  # as if the process died while drawing it, right after the epoch-end checkpoint
    resumed = run(make_cfg(tmp_path / "r", training={"grid_epochs": [2]}), images, resume=True)
    assert resumed.grids == [grid] and grid.read_bytes() == first


class PrecisionProbe(Tiny, MixedPrecisionModel):
    """Records, on each forward, whether bf16 autocast was on inside it (as the real U-Nets' forward does)."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        with autocast(self.precision, x.device):
            self.seen = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
            return super().forward(x, t).float()


def test_precision_reaches_training_the_ema_and_sampling(tmp_path: Path, images: Tensor) -> None:
    built: list[PrecisionProbe] = []

    def factory(model: ModelConfig) -> nn.Module:
        built.append(PrecisionProbe())
        return built[-1]

    cfg = make_cfg(tmp_path / "run", training={"epochs": 1, "precision": "bf16", "grid_epochs": []})
    result = train(cfg, images=images, model_factory=factory, progress=False)
    assert built[0].seen and built[0].precision == "bf16"  # the trained model ran under bf16 autocast
    model, _ = load_checkpoint_model(result.final_checkpoint, model_factory=factory)
    assert model.precision == "bf16"  # sampling defaults to the trained precision
    model, _ = load_checkpoint_model(result.final_checkpoint, precision="fp32", model_factory=factory)
    model(images[:2], torch.zeros(2, dtype=torch.long))
    assert model.precision == "fp32" and not model.seen


def test_a_second_writer_gets_a_named_error_and_the_lock_ends_with_the_run(
    tmp_path: Path, images: Tensor
) -> None:
    from hqdm.train.lock import RunLock, RunLockedError

    cfg = make_cfg(tmp_path / "run")
    with RunLock(tmp_path / "run"), pytest.raises(RunLockedError, match=f"pid {os.getpid()} on "):
        run(cfg, images)  # another holder (here: this test) has the folder
    assert not find_checkpoints(tmp_path / "run")  # nothing was written
    run(cfg, images, max_steps=2)
    run(cfg, images, resume=True)  # the first run released the lock when it ended


@pytest.mark.parametrize("damage", ["truncate", "flip"])
@pytest.mark.parametrize("name", ["model.safetensors", "ema.safetensors", "optimizer.pt", "rng.pt"])
def test_resume_skips_a_damaged_checkpoint_for_the_newest_intact_one(
    tmp_path: Path, images: Tensor, capsys, name: str, damage: str
) -> None:
    cfg = make_cfg(tmp_path / "run")
    run(cfg, images, max_steps=3)
    run(cfg, images, resume=True, max_steps=4)
    newest = latest_checkpoint(tmp_path / "run")
    data = (newest / name).read_bytes()
    if damage == "truncate":
        (newest / name).write_bytes(data[: len(data) // 2])
    else:
        (newest / name).write_bytes(data[:-40] + bytes(b ^ 0xFF for b in data[-40:]))
    with pytest.raises(CheckpointError, match=f"{name} does not match its checksum"):
        load_checkpoint_model(newest, model_factory=tiny_factory)
    result = run(cfg, images, resume=True)
    assert f"skipping damaged checkpoint {newest} ({name} does not match" in capsys.readouterr().out
    assert (newest.parent / f".{newest.name}.damaged").is_dir()
    reference = run(make_cfg(tmp_path / "reference"), images)
    assert_identical(result.final_checkpoint, reference.final_checkpoint)  # replayed from step 3 exactly


def test_non_finite_weights_are_refused(tmp_path: Path, images: Tensor) -> None:
    from safetensors.torch import save_file

    from hqdm.train.checkpoint import MANIFEST

    result = run(make_cfg(tmp_path / "run"), images, max_steps=2)
    tensors = load_file(result.final_checkpoint / "ema.safetensors")
    tensors["inp.weight"][0, 0, 0, 0] = float("nan")
    save_file(tensors, result.final_checkpoint / "ema.safetensors")
    (result.final_checkpoint / MANIFEST).unlink()  # as a checkpoint from before manifests
    with pytest.raises(CheckpointError, match="NaN or infinite values"):
        load_checkpoint_model(result.final_checkpoint, model_factory=tiny_factory)


def test_torn_log_rows_and_leftover_temporaries_do_not_block_a_resume(tmp_path: Path, images: Tensor) -> None:
    cfg = make_cfg(tmp_path / "run")
    run(cfg, images, max_steps=4)
    log = tmp_path / "run" / "log.csv"
    log.write_text(log.read_text() + "6,2,0.1\ngarbage\x00,row\n")  # a row torn by a crash, then garbage
    leftover = tmp_path / "run" / "checkpoints" / ".step_0000005.abc.tmp"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"partial")
    with pytest.warns(UserWarning, match="skipped 2 unreadable row"):
        result = run(cfg, images, resume=True)
    assert not leftover.exists()
    steps = [row.step for row in read_log(log)]
    assert steps == sorted(steps) and steps[-1] == result.state.step


def test_resuming_with_another_model_is_refused(tmp_path: Path, images: Tensor) -> None:
    run(make_cfg(tmp_path / "run"), images, max_steps=2)
    with pytest.raises(RunDirError, match="trains 'unet' but the config names 'qvunet-1hq'"):
        run(make_cfg(tmp_path / "run", model={"name": "qvunet-1hq"}), images, resume=True)


def test_run_files_follow_the_umask(tmp_path: Path, images: Tensor) -> None:
    old = os.umask(0o022)
    try:
        result = run(make_cfg(tmp_path / "run"), images, max_steps=2)
    finally:
        os.umask(old)
    checkpoint = result.final_checkpoint
    assert checkpoint.stat().st_mode & 0o777 == 0o755
    for path in (checkpoint / "model.safetensors", checkpoint / "state.json", result.run_dir / "log.csv"):
        assert path.stat().st_mode & 0o777 == 0o644, path


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_a_cuda_device_without_cuda_is_a_named_config_error() -> None:
    from hqdm.config import ConfigError
    from hqdm.train.setup import resolve_device

    with pytest.raises(
        ConfigError, match=r"training\.device: 'cuda' asked for, but this torch build sees no CUDA"
    ):
        resolve_device("cuda")
