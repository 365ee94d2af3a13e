"""Data-parallel training and sharded sampling: two gloo processes on the CPU against one.

One ``torchrun --nproc_per_node=2`` job (this file run as a script, on 127.0.0.1 only) does all the
two-process work once per module; the tests compare its outputs with single-process runs made in the
test process. Tiny stand-in models on 8x8 images keep the whole file to a few seconds of compute.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from conftest import TinyEps, checkpoint_tensors, seeded_images
from hqdm.config import Config, ConfigError, ModelConfig, config_from_dict
from hqdm.diffusion import SamplingPipeline, make_schedule
from hqdm.quantum import PatchCircuit
from hqdm.train import latest_checkpoint, read_state, sample_to_folder, train
from hqdm.train.distributed import (
    DistContext,
    DistributedError,
    TorchrunEnv,
    exit_without_teardown,
    join_process_group,
    leave_process_group,
    shard_bounds,
    torchrun_env,
)
from hqdm.train.generate import generate_sharded
from hqdm.train.logs import read_log
from hqdm.train.setup import check_batch_split
from hqdm.train.trainer import Trainer

T = 50
ATOL, RTOL = 1e-5, 1e-4  # float sums in another order (DDP's all-reduce), amplified a little by Adam


class TinyQuantum(TinyEps):
    """TinyEps plus a 4-qubit circuit on every 2x2 patch of a one-channel map (its weights are quantum)."""

    def __init__(self) -> None:
        super().__init__(T)
        self.to_patch = nn.Conv2d(4, 1, 1)
        self.circuit = PatchCircuit("basic", 1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h = torch.tanh(self.inp(x) + self.temb(t)[:, :, None, None])
        p = self.to_patch(h)
        b, _, height, width = p.shape
        patches = p.reshape(b, height // 2, 2, width // 2, 2).permute(0, 1, 3, 2, 4).reshape(-1, 1, 2, 2)
        z = self.circuit(patches).reshape(b, height // 2, width // 2, 2, 2).permute(0, 3, 1, 4, 2)
        return self.out(h) + z.reshape(b, 1, height, width)


def factory(model: ModelConfig) -> nn.Module:
    return TinyQuantum() if model.name == "quantum" else TinyEps(T)


def make_cfg(out: Path, model: str = "unet", seed: int = 7) -> Config:
    raw = {
        "model": {"name": model},
        "diffusion": {"num_timesteps": T},
        "training": {
            "batch_size": 4,
            "epochs": 2,
            "seed": seed,
            "grid_epochs": [],
            "checkpoint_every": 3,
            "keep_last": 10,
            "device": "cpu",
            "log_every": 2,
        },
        "ema": {"warmup_steps": 2, "update_every": 2},
        "output_dir": str(out),
    }
    return config_from_dict(raw, check_names=False)


def make_images() -> Tensor:
    # batch 4 -> 5 batches; the last one of 3 images splits unevenly (1 + 2) over two processes
    return seeded_images(19)


def run(cfg: Config, **kwargs) -> Path:
    result = train(cfg, images=make_images(), model_factory=factory, progress=False, **kwargs)
    return result.final_checkpoint


def assert_close(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    far = [k for k in a if not torch.allclose(a[k].float(), b[k].float(), atol=ATOL, rtol=RTOL)]
    assert not far, f"tensors differ beyond tolerance: {far}"


# --- the two-process job (this file run by torchrun) ---------------------------------------------


def two_process_job(root: Path) -> None:
    """What every rank runs; the runs share their directories, as ranks on one machine do."""
    rank = torchrun_env().rank
    run(make_cfg(root / "ddp"))  # full run: test 1, and the checkpoint sampled in test 2
    run(make_cfg(root / "ddp_cut"), max_steps=3)  # stopped, resumed by one process in test 3
    run(make_cfg(root / "one_cut"), resume=True)  # a one-process run's checkpoint, resumed by two
    sample_to_folder(root / "ddp", root / "ddp_samples", num_images=5, steps=3, seed=1, model_factory=factory)
    ctx, _ = join_process_group(torch.device("cpu"))
    cfg = make_cfg(root / "quantum", model="quantum")
    trainer = Trainer(cfg, images=make_images(), model_factory=factory, progress=False, dist=ctx)
    trainer.run(max_steps=3)
    save_file(trainer.model.state_dict(), root / f"quantum_rank{rank}.safetensors")
    pipe = SamplingPipeline(
        trainer.ema.shadow, trainer.diffusion.schedule, image_shape=(1, 8, 8), sampler="ddim", steps=2
    )
    gathered = generate_sharded(pipe, num_images=3, seed=5, batch_size=1, dist=ctx)
    info = {"world_size": ctx.world_size, "gathered": None if gathered is None else list(gathered.shape)}
    (root / f"rank{rank}.json").write_text(json.dumps(info))
    if gathered is not None:
        save_file({"images": gathered}, root / "quantum_samples.safetensors")
    assert leave_process_group()  # as every hqdm command does last


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    run(make_cfg(root / "one_cut"), max_steps=4)  # stops right before the epoch's short last batch
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "passive"}
    if sys.platform.startswith("linux"):
        env["GLOO_SOCKET_IFNAME"] = "lo"  # keep gloo's traffic on the loopback interface
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
        "--master_addr=127.0.0.1", f"--master_port={free_loopback_port()}", __file__, str(root),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    # the ranks' own tracebacks come first in stderr; torchrun's summary follows
    assert done.returncode == 0, done.stderr[:3000] + "\n...\n" + done.stderr[-1500:]
    return root


# --- 1. same weights -----------------------------------------------------------------------------


def test_two_processes_train_the_same_weights_as_one(job: Path, tmp_path: Path) -> None:
    one = run(make_cfg(tmp_path / "one"))
    two = latest_checkpoint(job / "ddp")
    assert read_state(two)[0].step == read_state(one)[0].step == 10
    assert_close(checkpoint_tensors(two), checkpoint_tensors(one))
    # the tolerance is far below what the 10 steps changed
    torch.manual_seed(7)  # the initialisation seed
    initial = TinyEps(T).out.weight.detach()
    assert (checkpoint_tensors(one)["model/out.weight"] - initial).abs().max() > 100 * ATOL
    # rank 0 alone logs: one row per logged step, with the global-batch loss
    rows_two, rows_one = read_log(job / "ddp" / "log.csv"), read_log(tmp_path / "one" / "log.csv")
    assert [r.step for r in rows_two] == [r.step for r in rows_one] == [2, 4, 5, 6, 8, 10]
    assert np.allclose([r.loss for r in rows_two], [r.loss for r in rows_one], rtol=1e-5)
    assert not [p for p in (job / "ddp" / "checkpoints").iterdir() if p.name.startswith(".")]


# --- 2. sharded sampling -------------------------------------------------------------------------


def test_sharded_sampling_equals_single_process_image_for_image(job: Path, tmp_path: Path) -> None:
    one = sample_to_folder(job / "ddp", tmp_path / "s", num_images=5, steps=3, seed=1, model_factory=factory)
    with np.load(one.npz) as a, np.load(job / "ddp_samples" / "samples.npz") as b:
        single, sharded = a["images"], b["images"]
    assert sharded.shape == single.shape == (5, 1, 28, 28)
    assert len({image.tobytes() for image in sharded}) == 5  # no shard repeated another's seeds
    assert np.array_equal(sharded, single)
    assert (job / "ddp_samples" / "samples.png").read_bytes()[:4] == b"\x89PNG"


def test_generate_sharded_gathers_on_rank_zero_only(job: Path) -> None:
    infos = [json.loads((job / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [i["world_size"] for i in infos] == [2, 2]
    assert infos[0]["gathered"] == [3, 1, 8, 8] and infos[1]["gathered"] is None
    sharded = load_file(job / "quantum_samples.safetensors")["images"]
    model = TinyQuantum()
    ema = load_file(latest_checkpoint(job / "quantum") / "ema.safetensors")
    model.load_state_dict(ema)
    pipe = SamplingPipeline(model, make_schedule("cosine", T), image_shape=(1, 8, 8), sampler="ddim", steps=2)
    single = generate_sharded(pipe, num_images=3, seed=5)
    assert torch.equal(sharded, single)


# --- 3. resume with another world size -----------------------------------------------------------


def test_two_process_run_resumes_with_one_process(job: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut"
    shutil.copytree(job / "ddp_cut", cut)
    state = read_state(latest_checkpoint(cut))[0]
    assert (state.step, state.epoch, state.batch) == (3, 0, 3)
    resumed = run(make_cfg(cut), resume=True)
    full = run(make_cfg(tmp_path / "full"))
    assert read_state(resumed)[0].step == 10
    assert_close(checkpoint_tensors(resumed), checkpoint_tensors(full))


def test_one_process_run_resumes_with_two_processes(job: Path, tmp_path: Path) -> None:
    full = run(make_cfg(tmp_path / "full"))
    resumed = latest_checkpoint(job / "one_cut")
    assert read_state(resumed)[0].step == 10
    assert_close(checkpoint_tensors(resumed), checkpoint_tensors(full))


# --- 4. quantum parameters -----------------------------------------------------------------------


def test_quantum_weights_are_all_reduced(job: Path, tmp_path: Path) -> None:
    ranks = [load_file(job / f"quantum_rank{r}.safetensors") for r in (0, 1)]
    assert "circuit.weights" in ranks[0]
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    one = run(make_cfg(tmp_path / "q", model="quantum"), max_steps=3)
    single = load_file(one / "model.safetensors")
    assert torch.allclose(ranks[0]["circuit.weights"], single["circuit.weights"], atol=ATOL, rtol=RTOL)
    torch.manual_seed(7)  # the initialisation seed: the circuit weights did train
    assert not torch.allclose(TinyQuantum().circuit.weights, single["circuit.weights"], atol=1e-4)


# --- in-process checks ---------------------------------------------------------------------------


def test_global_batch_must_split_over_the_processes() -> None:
    check_batch_split(8, 18, 2)
    with pytest.raises(ConfigError, match="divisible by the number of processes"):
        check_batch_split(6, 18, 4)
    with pytest.raises(ConfigError, match="last batch"):
        check_batch_split(8, 17, 2)  # last batch of 1 image for 2 processes


def test_shards_cover_every_item_once() -> None:
    for n, world in [(5, 2), (4, 2), (3, 4), (10, 3)]:
        bounds = [shard_bounds(n, r, world) for r in range(world)]
        assert [i for lo, hi in bounds for i in range(lo, hi)] == list(range(n))
    assert DistContext(rank=1, world_size=2).bounds(5) == (2, 5)


def test_without_a_group_there_is_nothing_to_leave() -> None:
    assert leave_process_group() is False


def test_exit_without_teardown_flushes_output_and_keeps_the_code() -> None:
    # stdout to a pipe is block-buffered: without the flush, os._exit would lose the unfinished line
    script = (
        "from hqdm.train.distributed import exit_without_teardown\n"
        "print('written', end='')\n"
        "exit_without_teardown(3)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert (done.returncode, done.stdout) == (3, "written"), done.stderr


def test_torchrun_environment_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert torchrun_env() is None
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(DistributedError, match="together"):
        torchrun_env()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert torchrun_env() == TorchrunEnv(1, 4, 1)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(DistributedError, match="RANK=4"):
        torchrun_env()


if __name__ == "__main__":  # a rank of the torchrun job started by the ``job`` fixture
    two_process_job(Path(sys.argv[1]))
    exit_without_teardown(0)  # as every hqdm command does after leaving a group
