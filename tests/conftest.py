"""Helpers shared by the test files: seeded tensors, small stand-in networks and checkpoints on disk.

Fixtures need no import. The plain helpers are imported with ``from conftest import ...`` (pytest puts
this folder on ``sys.path``, as does running a test file as a script, e.g. test_distributed under torchrun).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from hqdm.config import config_from_dict, config_to_dict
from hqdm.diffusion import EMA
from hqdm.train import TrainState, save_checkpoint


def seeded_images(count: int, size: int = 8, seed: int = 0) -> Tensor:
    """``count`` one-channel float images, uniform in [-1, 1], the same for the same arguments."""
    return torch.rand(count, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def images() -> Tensor:
    """18 training images: batch 4 -> 5 batches, the last one short (2 images)."""
    return seeded_images(18)


def eps_inputs(timesteps: Sequence[int], channels: int = 1, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A model input: one standard-normal 28x28 image per timestep in ``timesteps``, and those timesteps."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(len(timesteps), channels, 28, 28, generator=gen), torch.tensor(list(timesteps))


class TinyEps(nn.Module):
    """A few-hundred-parameter eps-model (conv, timestep embedding, conv) for any image size."""

    def __init__(self, num_timesteps: int) -> None:
        super().__init__()
        self.inp = nn.Conv2d(1, 4, 3, padding=1)
        self.temb = nn.Embedding(num_timesteps, 4)
        self.out = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.out(torch.tanh(self.inp(x) + self.temb(t)[:, :, None, None]))


class PixelStats(nn.Module):
    """4-feature stand-in for the FID network (it needs ``num_features`` and ``cache_key``)."""

    num_features = 4
    cache_key = "test-reproduce-pixel-stats-v1"

    def forward(self, images: Tensor) -> Tensor:
        x = images.float().flatten(1) / 255.0
        return torch.stack([x.mean(1), x.std(1), x[:, :392].mean(1), (x > 0.5).float().mean(1)], dim=1)


def write_checkpoint(
    run_dir: Path,
    model: nn.Module,
    *,
    name: str = "unet",
    ema: nn.Module | None = None,
    step: int = 1,
    epoch: int = 0,
    dataset: str | None = None,
) -> Path:
    """A checkpoint of ``model`` (registered as ``name``) in ``run_dir``, as training would write it after
    ``step`` steps, with a 10-step schedule on the CPU. ``ema`` defaults to a copy of the model's weights;
    ``dataset`` sets ``data.dataset`` (the real images an evaluation reads)."""
    raw: dict = {"model": {"name": name}, "diffusion": {"num_timesteps": 10}, "training": {"device": "cpu"}}
    if dataset is not None:
        raw["data"] = {"dataset": dataset}
    return save_checkpoint(
        run_dir, TrainState(step=step, epoch=epoch, model_name=name), model=model,
        ema=EMA(model).shadow if ema is None else ema, optimizer=torch.optim.Adam(model.parameters()),
        generators={}, config=config_to_dict(config_from_dict(raw)), keep_last=1,
    )  # fmt: skip


def checkpoint_tensors(checkpoint: Path) -> dict[str, Tensor]:
    """Every tensor a checkpoint holds: ``model/<key>``, ``ema/<key>`` and ``adam/<param id>/<slot>``."""
    out = {f"model/{k}": v for k, v in load_file(checkpoint / "model.safetensors").items()}
    out |= {f"ema/{k}": v for k, v in load_file(checkpoint / "ema.safetensors").items()}
    opt = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    for pid, slots in opt["state"].items():
        out |= {f"adam/{pid}/{name}": torch.as_tensor(v) for name, v in slots.items()}
    return out
