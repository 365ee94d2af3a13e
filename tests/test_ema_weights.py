"""The EMA behind every sample: the trainer's update schedule, and which weights grids, ``hqdm sample`` and
``hqdm evaluate`` draw from (the EMA weights unless the online ones are asked for)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from conftest import seeded_images, write_checkpoint
from hqdm.cli import main
from hqdm.config import Config, config_from_dict
from hqdm.experiments.evaluate_checkpoint import EvalSettings
from hqdm.experiments.reproduce import _reusable_evaluation
from hqdm.models import build_model
from hqdm.train import Trainer, resolve_checkpoint

T = 20
EMA_SETTINGS = {"warmup_steps": 3, "update_every": 2, "power": 1.0, "max_decay": 0.8}


class Tiny(nn.Module):
    """A few-parameter eps-model with a ``mid.`` vertex, so that transfer learning has something to keep."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Conv2d(1, 3, 3, padding=1)
        self.temb = nn.Embedding(T, 3)
        self.mid = nn.Conv2d(3, 3, 1)
        self.out = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h = self.inp(x) + self.temb(t)[:, :, None, None]
        return self.out(h + self.mid(h))


def tiny_config(out: Path, **sections: dict) -> Config:
    raw: dict = {
        "model": {"name": "unet"},
        "diffusion": {"num_timesteps": T},
        "training": {
            "batch_size": 4, "epochs": 2, "seed": 3, "grid_epochs": [], "checkpoint_every": 1000,
            "keep_last": 10, "device": "cpu", "log_every": 5,
        },
        "ema": EMA_SETTINGS,
        "sampling": {"sampler": "ddim", "steps": 2, "num_images": 2},
        "output_dir": str(out),
    }  # fmt: skip
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return config_from_dict(raw, check_names=False)


@pytest.fixture(scope="module")
def images() -> Tensor:
    """Replaces conftest's 18 images: 20 make exactly 5 steps per epoch, which the schedules below count."""
    return seeded_images(20)


def _parameters(model: nn.Module) -> dict[str, Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_trainer_updates_the_ema_on_the_documented_schedule_in_both_transfer_phases(
    tmp_path: Path, images: Tensor
) -> None:
    """docs/diffusion.md and docs/training.md: after optimiser step k of a phase (k from 1), the shadow is
    a copy of the model while k <= warmup_steps; then, when k % update_every == 0, it becomes
    d * shadow + (1 - d) * model with d = clip(1 - (1 + max(k - 1 - warmup_steps - 1, 0))^(-power), 0,
    max_decay); otherwise it stays. The count restarts at the transfer boundary (a fresh EMA)."""
    cfg = tiny_config(
        tmp_path / "run",
        training={"epochs": 3},
        transfer={"enabled": True, "classical_epochs": 2, "finetune_epochs": 1, "target_model": "qvunet-1fq"},
    )
    warmup, every, power, cap = (
        EMA_SETTINGS[k] for k in ("warmup_steps", "update_every", "power", "max_decay")
    )
    recorded: list[tuple[int, dict[str, Tensor], dict[str, Tensor]]] = []

    def record(step: int, loss: float) -> None:
        state = trainer.state
        recorded.append((state.phase, _parameters(trainer.model), _parameters(trainer.ema.shadow)))

    trainer = Trainer(cfg, images=images, model_factory=lambda model: Tiny(), progress=False, on_step=record)
    trainer.run()
    assert [phase for phase, _, _ in recorded] == [0] * 10 + [1] * 5

    expected: dict[str, Tensor] = {}
    decays = []
    for index, (phase, model, shadow) in enumerate(recorded):
        k = 1 + index - (10 if phase else 0)  # optimiser steps of this phase so far
        if k <= warmup:
            expected, decay = dict(model), 0.0
        elif k % every == 0:
            decay = min(max(1 - (1 + max(k - 1 - warmup - 1, 0)) ** -power, 0.0), cap)
            expected = {name: decay * expected[name] + (1 - decay) * model[name] for name in model}
        else:
            decay = None
        decays.append(decay)
        for name in model:
            torch.testing.assert_close(
                shadow[name], expected[name], atol=1e-6, rtol=1e-5, msg=f"step {index + 1}"
            )
    # the schedule met every case: copies, skips, decays below and at the cap, in both phases
    assert decays == [0.0, 0.0, 0.0, 0.0, None, 0.5, None, 0.75, None, 0.8, 0.0, 0.0, 0.0, 0.0, None]


def test_grids_are_drawn_from_the_ema_weights(tmp_path: Path, images: Tensor) -> None:
    sampled: list[Tensor] = []

    class Recording(Tiny):
        def forward(self, x: Tensor, t: Tensor) -> Tensor:
            if not torch.is_grad_enabled():  # sampling; training forwards need gradients
                sampled.append(torch.cat([p.detach().flatten() for p in self.parameters()]))
            return super().forward(x, t)

    cfg = tiny_config(tmp_path / "run", training={"grid_epochs": [1, 2]})
    trainer = Trainer(cfg, images=images, model_factory=lambda model: Recording(), progress=False)
    result = trainer.run()
    assert [p.name for p in result.grids] == ["epoch_001.png", "epoch_002.png"]
    names = [name for name, _ in Tiny().named_parameters()]
    for epoch, step in ((1, 5), (2, 10)):
        checkpoint = result.run_dir / "checkpoints" / f"step_{step:07d}"
        ema, online = (load_file(checkpoint / f) for f in ("ema.safetensors", "model.safetensors"))
        ema_flat, online_flat = (torch.cat([w[n].flatten() for n in names]) for w in (ema, online))
        assert not torch.allclose(ema_flat, online_flat)  # the two differ by then
        drawn = sampled[(epoch - 1) * 2 : epoch * 2]  # two DDIM steps per grid
        assert all(torch.equal(weights, ema_flat) for weights in drawn), f"grid of epoch {epoch}"
    assert len(sampled) == 4


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """U-Net run folders by "online/EMA" weights: A/A and B/B (either flag samples A, or B) and A/B."""
    weights = {}
    for name, seed in (("A", 0), ("B", 1)):
        torch.manual_seed(seed)
        weights[name] = build_model("unet")
    folders = {}
    for online, ema in ("AA", "BB", "AB"):
        folders[online + ema] = run_dir = tmp_path_factory.mktemp(online + ema)
        write_checkpoint(run_dir, weights[online], ema=weights[ema], dataset="embedded-mnist")
    return folders


def _sample(run_dir: Path, out: Path, *flags: str) -> np.ndarray:
    argv = ["sample", str(run_dir), "-n", "2", "--sampler", "ddim", "--steps", "2", "--seed", "5"]
    assert main([*argv, "--out", str(out), *flags]) == 0
    with np.load(out / "samples.npz") as npz:
        return npz["images"]


def test_hqdm_sample_draws_from_the_ema_weights_unless_no_ema(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    from_a, from_b = (_sample(checkpoints[name], tmp_path / name) for name in ("AA", "BB"))
    assert not np.array_equal(from_a, from_b)
    assert np.array_equal(_sample(checkpoints["AB"], tmp_path / "ema"), from_b)
    assert np.array_equal(_sample(checkpoints["AB"], tmp_path / "online", "--no-ema"), from_a)


def _evaluate(run_dir: Path, out: Path, *flags: str) -> dict:
    argv = ["evaluate", str(run_dir), "--num-samples", "4", "--sampler", "ddim", "--steps", "2"]
    argv += ["--metrics", "ssim", "--batch-size", "4", "--kid-subset-size", "2", "--out", str(out)]
    assert main([*argv, *flags]) == 0
    return json.loads((out / "evaluation.json").read_text())


def test_hqdm_evaluate_scores_the_ema_weights_unless_no_ema(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    from_a, from_b = (_evaluate(checkpoints[name], tmp_path / name)["metrics"] for name in ("AA", "BB"))
    assert from_a["ssim"] != from_b["ssim"]
    ema = _evaluate(checkpoints["AB"], tmp_path / "ema")
    assert ema["weights"] == "ema" and ema["metrics"]["ssim"] == from_b["ssim"]
    online = _evaluate(checkpoints["AB"], tmp_path / "online", "--no-ema")
    assert online["weights"] == "online" and online["metrics"]["ssim"] == from_a["ssim"]
    # hqdm reproduce reads a stored evaluation back only when it scored the EMA weights
    settings = EvalSettings(
        num_samples=4, sampler="ddim", steps=2, metrics=("ssim",), batch_size=4, kid_subset_size=2
    )
    checkpoint = resolve_checkpoint(checkpoints["AB"])
    assert _reusable_evaluation(tmp_path / "ema", settings, checkpoint, None) == ema
    assert _reusable_evaluation(tmp_path / "online", settings, checkpoint, None) is None
