"""How well a checkpoint's network predicts the noise, timestep by timestep (``hqdm eps-error``).

For real images x0, fixed noise eps and a timestep t, the network sees x_t = sqrt(abar_t) x0 +
sqrt(1 - abar_t) eps and returns eps_hat. Two numbers per t: the mean squared error of eps_hat (what
training minimises, unweighted) and the mean offset of eps_hat - eps over every pixel and image. An offset
c is almost free in the loss (it adds c²) but not in sampling: the sampler's estimate of x0 moves by
-c sqrt(1 - abar_t) / sqrt(abar_t), large at the noisy end where every sample starts, so c > 0 draws darker
images. A checkpoint holds the online weights and their EMA; scoring both on the same draws shows what the
EMA's averaging costs at that point of training (docs/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from hqdm.config import ConfigError, config_from_dict
from hqdm.diffusion import GaussianDiffusion, make_schedule
from hqdm.train.checkpoint import read_state, resolve_checkpoint
from hqdm.train.generate import load_checkpoint_model

__all__ = ["EpsError", "checkpoint_eps_errors", "eps_error", "format_eps_errors"]

DEFAULT_TIMESTEPS = (0, 50, 200, 500, 800, 950, 999)


@dataclass(frozen=True)
class EpsError:
    source: str  # the checkpoint
    weights: str  # "ema" or "online"
    timesteps: tuple[int, ...]
    mse: tuple[float, ...]
    offset: tuple[float, ...]  # mean of eps_hat - eps


@torch.no_grad()
def eps_error(
    model: nn.Module, diffusion: GaussianDiffusion, x0: Tensor, timesteps: Sequence[int], *, seed: int = 0
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(MSE, mean offset) of ``model``'s noise prediction at each timestep; x0 in [-1, 1]. The noise of
    timestep i comes from ``seed`` alone, so two models given the same arguments see the same draws."""
    mse, offset = [], []
    for i, step in enumerate(timesteps):
        generator = torch.Generator().manual_seed(seed * 100_003 + i)
        eps = torch.randn(x0.shape, generator=generator).to(x0.device)
        t = torch.full((x0.shape[0],), step, dtype=torch.long, device=x0.device)
        error = model(diffusion.q_sample(x0, t, eps), t).float() - eps
        mse.append(error.square().mean().item())
        offset.append(error.mean().item())
    return tuple(mse), tuple(offset)


def checkpoint_eps_errors(
    checkpoint: str | Path,
    x0: Tensor,
    *,
    timesteps: Sequence[int] = DEFAULT_TIMESTEPS,
    seed: int = 0,
    device: torch.device | None = None,
) -> list[EpsError]:
    """The EMA weights' errors and, when the checkpoint holds them, the online weights' (fp32 forward).

    ``x0``: real images of the checkpoint's dataset in [-1, 1] (``ImageDataset.to_model_range()``)."""
    folder = resolve_checkpoint(Path(checkpoint))
    spec = config_from_dict(read_state(folder)[1], check_names=False).diffusion
    schedule = make_schedule(spec.schedule, spec.num_timesteps, **spec.schedule_options)
    bad = [t for t in timesteps if not 0 <= t < schedule.num_timesteps]
    if bad:
        raise ConfigError(f"--timesteps: {bad} outside 0..{schedule.num_timesteps - 1} of {folder}")
    diffusion = GaussianDiffusion(schedule)
    found = [("ema", True)] + ([("online", False)] if (folder / "model.safetensors").is_file() else [])
    rows = []
    for label, use_ema in found:
        model, _ = load_checkpoint_model(folder, use_ema=use_ema, device=device, precision="fp32")
        images = x0.to(next(model.parameters()).device)
        mse, offset = eps_error(model, diffusion, images, timesteps, seed=seed)
        rows.append(EpsError(str(folder), label, tuple(timesteps), mse, offset))
    return rows


def format_eps_errors(rows: Sequence[EpsError]) -> list[str]:
    """A markdown table: one row per (checkpoint, weights), 'MSE / offset' per timestep."""
    timesteps = rows[0].timesteps
    lines = [
        "| checkpoint | weights | " + " | ".join(f"t={t}" for t in timesteps) + " |",
        "|---|---|" + "---:|" * len(timesteps),
    ]
    for row in rows:
        cells = " | ".join(f"{m:.4f} / {o:+.3f}" for m, o in zip(row.mse, row.offset, strict=True))
        lines.append(f"| {row.source} | {row.weights} | {cells} |")
    return lines
