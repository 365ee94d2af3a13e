"""Samplers that turn an epsilon model into images. Each one is independent of the model and the trainer.

All samplers call ``model(x, t)`` with t an int64 tensor of shape (B,), under ``torch.no_grad()`` with
the model in eval mode (the previous train/eval flags are restored afterwards), and return the last
x0 prediction clipped to [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from hqdm.registry import lookup

from .noise import GaussianNoise, NoiseSource, sample_noise
from .process import EpsModel
from .schedules import NoiseSchedule

__all__ = [
    "DDIMSampler",
    "DDPMSampler",
    "Sampler",
    "StepSampler",
    "available_samplers",
    "make_sampler",
    "sampler_description",
    "sampler_label",
    "sampler_options",
]


@runtime_checkable
class Sampler(Protocol):
    def sample(
        self,
        model: EpsModel,
        shape: tuple[int, ...],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        progress: bool = False,
    ) -> Tensor:
        """Generate a batch of ``shape`` (B, C, H, W) with values in [-1, 1]."""
        ...


@contextmanager
def _inference(model: EpsModel) -> Iterator[None]:
    """no_grad + eval mode, restoring every submodule's own training flag on exit."""
    modules = list(model.modules()) if isinstance(model, nn.Module) else []
    flags = [m.training for m in modules]
    if isinstance(model, nn.Module):
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, flag in zip(modules, flags, strict=True):
            m.training = flag


def _resolve_device(model: EpsModel, device: torch.device | str | None) -> torch.device:
    """Explicit device, else the device of the model's first parameter, else the CPU."""
    if device is not None:
        return torch.device(device)
    if isinstance(model, nn.Module):
        first = next(model.parameters(), None)
        if first is not None:
            return first.device
    return torch.device("cpu")


def _check_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(shape)
    if len(shape) < 2 or any(not isinstance(n, int) or n < 1 for n in shape):
        raise ValueError(f"shape must be (B, ...) with positive ints, got {shape}")
    return shape


def _predict_eps(model: EpsModel, x: Tensor, t: int) -> Tensor:
    t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    eps = model(x, t_batch)
    if eps.shape != x.shape:
        raise ValueError(f"the model returned shape {tuple(eps.shape)} at t={t}, expected {tuple(x.shape)}")
    return eps.to(x.dtype)


def _predict_x0(schedule: NoiseSchedule, x: Tensor, eps: Tensor, t: int, clip: bool) -> Tensor:
    """x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), optionally clipped to the data range."""
    x0 = (x - schedule.sqrt_one_minus_alphas_cumprod[t].item() * eps) / schedule.sqrt_alphas_cumprod[t].item()
    return x0.clamp(-1.0, 1.0) if clip else x0


class StepSampler:
    """The sampling loop, written once: a sampler says which timesteps it visits (:meth:`timesteps`) and
    how it moves from one to the next given the model's x0 prediction (:meth:`step`).

    At each visited t the model predicts eps, which gives x0_hat (clipped to [-1, 1] if ``clip_x0``); after
    the last timestep the loop returns that x0_hat, clipped."""

    name = "sampler"  # progress-bar label

    def __init__(self, schedule: NoiseSchedule, noise: NoiseSource | None, clip_x0: bool) -> None:
        self.schedule = schedule
        self.noise = noise if noise is not None else GaussianNoise()
        self.clip_x0 = clip_x0

    def timesteps(self) -> list[int]:
        """The visited timesteps in sampling order (decreasing)."""
        raise NotImplementedError

    def step(
        self, x: Tensor, x0: Tensor, t: int, t_next: int, *, generator: torch.Generator | None
    ) -> Tensor:
        """x at ``t_next`` from x at ``t`` and its x0 prediction."""
        raise NotImplementedError

    def sample(
        self,
        model: EpsModel,
        shape: tuple[int, ...],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        progress: bool = False,
    ) -> Tensor:
        shape, device = _check_shape(shape), _resolve_device(model, device)
        timesteps = self.timesteps()
        with _inference(model):
            x = sample_noise(self.noise, shape, generator=generator, device=device, dtype=dtype)
            for i, t in enumerate(tqdm(timesteps, desc=self.name, disable=not progress, leave=False)):
                x0 = _predict_x0(self.schedule, x, _predict_eps(model, x, t), t, self.clip_x0)
                if i == len(timesteps) - 1:
                    break
                x = self.step(x, x0, t, timesteps[i + 1], generator=generator)
        return x0.clamp(-1.0, 1.0)

    def _noise_like(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return sample_noise(self.noise, tuple(x.shape), generator=generator, device=x.device, dtype=x.dtype)


class DDPMSampler(StepSampler):
    """Ancestral sampler of Ho et al. over all T steps, with posterior variance beta_tilde_t.

    At each t > 0: the posterior mean of q(x_{t-1} | x_t, x0_hat) plus sqrt(beta_tilde_t)·z. At t = 0 the
    posterior mean is x0_hat itself (alphas_cumprod_prev[0] = 1), so the sampler returns the last x0_hat.
    """

    name = "DDPM"

    def __init__(
        self, schedule: NoiseSchedule, noise: NoiseSource | None = None, clip_x0: bool = True
    ) -> None:
        super().__init__(schedule, noise, clip_x0)

    def timesteps(self) -> list[int]:
        return list(range(self.schedule.num_timesteps - 1, -1, -1))

    def step(
        self, x: Tensor, x0: Tensor, t: int, t_next: int, *, generator: torch.Generator | None
    ) -> Tensor:
        s = self.schedule
        mean = s.posterior_mean_coef_x0[t].item() * x0 + s.posterior_mean_coef_xt[t].item() * x
        return mean + math.sqrt(s.posterior_variance[t].item()) * self._noise_like(x, generator)


class DDIMSampler(StepSampler):
    """DDIM (Song et al.) on a subsequence of ``steps`` timesteps; eta = 0 is deterministic.

    Timesteps: ``steps`` values evenly spaced from T-1 down to 0, rounded to the nearest integer (both
    ends included; ``steps = 1`` is the single step T-1). The step from t to the next timestep t' is

        x_t' = sqrt(abar_t') x0_hat + sqrt(1 - abar_t' - sigma²) eps + sigma z,
        sigma = eta · sqrt((1 - abar_t') / (1 - abar_t)) · sqrt(1 - abar_t / abar_t'),

    with eps recomputed from the (clipped) x0_hat so that x0_hat and eps describe the same x_t. After
    the last timestep the sampler jumps to abar = 1 and returns x0_hat. With steps = T and eta = 1
    each step equals the ancestral DDPM step (and draws noise in the same order).
    """

    name = "DDIM"

    def __init__(
        self,
        schedule: NoiseSchedule,
        steps: int = 50,
        eta: float = 0.0,
        noise: NoiseSource | None = None,
        clip_x0: bool = True,
    ) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= schedule.num_timesteps:
            raise ValueError(
                f"DDIM steps must be an int in [1, {schedule.num_timesteps}] (the schedule length), "
                f"got {steps!r}"
            )
        if not (math.isfinite(eta) and 0.0 <= eta <= 1.0):
            raise ValueError(f"DDIM eta must lie in [0, 1] (0 = deterministic, 1 = DDPM-like), got {eta!r}")
        super().__init__(schedule, noise, clip_x0)
        self.steps = steps
        self.eta = float(eta)

    def timesteps(self) -> list[int]:
        last = self.schedule.num_timesteps - 1
        if self.steps == 1:
            return [last]
        # floor(v + 0.5) rounds half up; spacing >= 1 keeps the rounded values distinct.
        return [math.floor(last * (self.steps - 1 - i) / (self.steps - 1) + 0.5) for i in range(self.steps)]

    def step(
        self, x: Tensor, x0: Tensor, t: int, t_next: int, *, generator: torch.Generator | None
    ) -> Tensor:
        s = self.schedule
        abar, abar_next = s.alphas_cumprod[t].item(), s.alphas_cumprod[t_next].item()
        eps = (x - math.sqrt(abar) * x0) / math.sqrt(1.0 - abar)
        sigma = self.eta * math.sqrt((1.0 - abar_next) / (1.0 - abar) * (1.0 - abar / abar_next))
        x_next = math.sqrt(abar_next) * x0 + math.sqrt(max(1.0 - abar_next - sigma**2, 0.0)) * eps
        if self.eta > 0.0:
            x_next = x_next + sigma * self._noise_like(x, generator)
        return x_next


# each sampler with the options it takes beyond the schedule and the noise source
_SAMPLERS: dict[str, tuple[Callable[..., Sampler], tuple[str, ...]]] = {
    "ddpm": (DDPMSampler, ()),
    "ddim": (DDIMSampler, ("steps", "eta")),
}


def available_samplers() -> list[str]:
    return sorted(_SAMPLERS)


def _entry(kind: str) -> tuple[Callable[..., Sampler], tuple[str, ...]]:
    return lookup(_SAMPLERS, kind, "sampler")


def sampler_options(kind: str, **settings: object) -> dict[str, object]:
    """The part of ``settings`` (e.g. ``steps``, ``eta``) that sampler ``kind`` takes: commands carry
    one set of sampler settings and each sampler reads what applies to it (DDPM visits every step)."""
    return {name: value for name, value in settings.items() if name in _entry(kind)[1]}


def sampler_label(kind: str, steps: int | None = None, eta: float | None = None) -> str:
    """Short name for tables and CSV files: ``ddpm``, or with the step count for samplers that take
    one (``ddim100``), and a non-zero eta for those that take one (``ddim100-eta1``)."""
    taken = _entry(kind)[1]
    label = f"{kind}{steps}" if "steps" in taken else kind
    return label + (f"-eta{eta:g}" if eta and "eta" in taken else "")


def sampler_description(kind: str, steps: int | None = None, eta: float | None = None) -> str:
    """Words for reports: ``DDPM (every timestep)``, ``DDIM, 100 steps, eta 0.0``."""
    taken = _entry(kind)[1]
    if "steps" not in taken:
        return f"{kind.upper()} (every timestep)"
    return f"{kind.upper()}, {steps} steps" + (f", eta {eta}" if "eta" in taken else "")


def make_sampler(kind: str, schedule: NoiseSchedule, **options: object) -> Sampler:
    """Build a sampler by name for configs, e.g. ``make_sampler("ddim", schedule, steps=50, eta=0.0)``."""
    return _entry(kind)[0](schedule, **options)
