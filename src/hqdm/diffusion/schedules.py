"""Noise schedules: the beta sequence of a diffusion process and the quantities derived from it.

A schedule is plain data (float64 tables on the CPU). Code that needs a value at some timesteps asks
for it with :meth:`NoiseSchedule.gather`, which casts to the working dtype/device at the point of use.

Named schedules live in a registry so a config can select one by name. Adding a schedule is one
decorated function that returns the betas::

    @register_schedule("tailored")
    def tailored_betas(num_timesteps: int = 1000, *, some_option: float = 0.5) -> torch.Tensor: ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from hqdm.registry import lookup

__all__ = [
    "DEFAULT_NUM_TIMESTEPS",
    "InvalidScheduleError",
    "NoiseSchedule",
    "available_schedules",
    "cosine_betas",
    "custom_betas",
    "linear_betas",
    "make_schedule",
    "register_schedule",
    "small_data_betas",
]

DEFAULT_NUM_TIMESTEPS = 1000

BetasFactory = Callable[..., Tensor]
_REGISTRY: dict[str, BetasFactory] = {}


class InvalidScheduleError(ValueError):
    """The betas (or the options that produce them) do not define a valid diffusion process."""


def _validate_betas(betas: Tensor | Sequence[float]) -> Tensor:
    try:
        values = torch.as_tensor(betas, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise InvalidScheduleError(
            f"betas must be a 1-D sequence of floats, got {type(betas).__name__}"
        ) from err
    if values.ndim != 1 or values.numel() < 1:
        raise InvalidScheduleError(f"betas must be a non-empty 1-D sequence, got shape {tuple(values.shape)}")
    if not torch.isfinite(values).all():
        bad = int((~torch.isfinite(values)).nonzero()[0])
        raise InvalidScheduleError(f"betas must be finite; betas[{bad}] = {values[bad].item()}")
    outside = (values <= 0) | (values >= 1)
    if outside.any():
        bad = int(outside.nonzero()[0])
        raise InvalidScheduleError(
            f"every beta must lie strictly inside (0, 1); betas[{bad}] = {values[bad].item()!r}. "
            "Clip the schedule (e.g. to [1e-8, 0.999]) before building it."
        )
    return values.clone()


class NoiseSchedule:
    """Betas of a T-step forward process and the derived tables, all float64 on the CPU.

    Index t runs over 0..T-1; ``alphas_cumprod[t]`` is the signal fraction after step t, so t = 0 is
    already (slightly) noisy. ``alphas_cumprod_prev[0]`` is 1 (clean data), not a wrap-around.
    """

    def __init__(self, betas: Tensor | Sequence[float]) -> None:
        self.betas = _validate_betas(betas)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([self.alphas_cumprod.new_ones(1), self.alphas_cumprod[:-1]])
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - self.alphas_cumprod).sqrt()
        self.snr = self.alphas_cumprod / (1.0 - self.alphas_cumprod)
        # Posterior q(x_{t-1} | x_t, x_0): variance beta_tilde and the two mean coefficients.
        self.posterior_variance = self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef_x0 = (
            self.betas * self.alphas_cumprod_prev.sqrt() / (1.0 - self.alphas_cumprod)
        )
        self.posterior_mean_coef_xt = (
            (1.0 - self.alphas_cumprod_prev) * self.alphas.sqrt() / (1.0 - self.alphas_cumprod)
        )

    @property
    def num_timesteps(self) -> int:
        return self.betas.numel()

    def __len__(self) -> int:
        return self.num_timesteps

    def __repr__(self) -> str:
        return (
            f"NoiseSchedule(T={self.num_timesteps}, beta[0]={self.betas[0].item():.3g}, "
            f"beta[-1]={self.betas[-1].item():.3g}, alphas_cumprod[-1]={self.alphas_cumprod[-1].item():.3g})"
        )

    def gather(self, table: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """``table[t]`` reshaped to broadcast against ``like`` (B, ...), in like's dtype and device.

        The cast happens before the move so float64 tables never reach devices without float64 support.
        """
        if t.ndim != 1 or t.shape[0] != like.shape[0]:
            raise ValueError(f"t must have shape ({like.shape[0]},) to match the batch, got {tuple(t.shape)}")
        values = table.to(dtype=like.dtype).to(like.device)[t.to(like.device)]
        return values.reshape(-1, *([1] * (like.ndim - 1)))


def register_schedule(name: str) -> Callable[[BetasFactory], BetasFactory]:
    """Register a function ``(num_timesteps=..., **options) -> betas`` under ``name`` for make_schedule."""

    def decorator(factory: BetasFactory) -> BetasFactory:
        if name in _REGISTRY:
            raise ValueError(f"a schedule named {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorator


def available_schedules() -> list[str]:
    return sorted(_REGISTRY)


def make_schedule(kind: str, num_timesteps: int | None = None, **options: object) -> NoiseSchedule:
    """Build a registered schedule by name, e.g. ``make_schedule("cosine", 1000, s=0.008)``.

    ``num_timesteps=None`` lets the schedule pick its default: 1000 for "cosine" and "linear",
    ``len(betas)`` for "custom".
    """
    factory = lookup(_REGISTRY, kind, "noise schedule")
    if num_timesteps is not None:
        options["num_timesteps"] = num_timesteps
    try:
        betas = factory(**options)
    except TypeError as err:  # unknown option names surface here
        raise InvalidScheduleError(f"bad options for schedule {kind!r}: {err}") from err
    return NoiseSchedule(betas)


def _check_num_timesteps(num_timesteps: int) -> None:
    if isinstance(num_timesteps, bool) or not isinstance(num_timesteps, int) or num_timesteps < 1:
        raise InvalidScheduleError(f"num_timesteps must be a positive int, got {num_timesteps!r}")


@register_schedule("cosine")
def cosine_betas(
    num_timesteps: int = DEFAULT_NUM_TIMESTEPS, *, s: float = 0.008, max_beta: float = 0.999
) -> Tensor:
    """Nichol & Dhariwal cosine schedule: abar(t) = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2).

    beta_t = 1 - abar(t+1)/abar(t), clipped above at ``max_beta`` (the last beta would otherwise be 1).
    """
    _check_num_timesteps(num_timesteps)
    if not 0.0 < max_beta < 1.0:
        raise InvalidScheduleError(f"max_beta must lie in (0, 1), got {max_beta}")
    if s < 0.0:
        raise InvalidScheduleError(f"the cosine offset s must be >= 0, got {s}")
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    f = torch.cos((steps + s) / (1.0 + s) * (math.pi / 2.0)) ** 2
    abar = f / f[0]
    return (1.0 - abar[1:] / abar[:-1]).clamp(max=max_beta)


@register_schedule("linear")
def linear_betas(
    num_timesteps: int = DEFAULT_NUM_TIMESTEPS,
    *,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    scale_with_steps: bool = True,
) -> Tensor:
    """Ho et al. linear schedule. With ``scale_with_steps`` the endpoints are multiplied by 1000/T.

    The scaling keeps the total noise comparable when T differs from 1000 (for T = 1000 it is a no-op).
    """
    _check_num_timesteps(num_timesteps)
    scale = DEFAULT_NUM_TIMESTEPS / num_timesteps if scale_with_steps else 1.0
    return torch.linspace(beta_start * scale, beta_end * scale, num_timesteps, dtype=torch.float64)


@register_schedule("custom")
def custom_betas(betas: Tensor | Sequence[float], num_timesteps: int | None = None) -> Tensor:
    """User-given betas; ``num_timesteps``, if given, must equal their length."""
    values = _validate_betas(betas)
    if num_timesteps is not None and num_timesteps != values.numel():
        raise InvalidScheduleError(f"num_timesteps={num_timesteps} but {values.numel()} betas were given")
    return values


@register_schedule("small-data")
def small_data_betas(
    num_timesteps: int = DEFAULT_NUM_TIMESTEPS,
    *,
    logsnr_max: float = 9.0,
    logsnr_min: float = -9.0,
    shift: float = 2.0 * math.log(64 / 28),
) -> Tensor:
    """Small-data schedule for 28x28 images (docs/chen2025.md): a shifted cosine in log-SNR, truncated.

    ``logsnr(u) = shift - 2 log tan(a + u (b - a))`` for u = k/T, k = 0..T, with a and b chosen so the
    curve runs exactly from ``logsnr_max`` (u = 0) to ``logsnr_min`` (u = 1); ``abar = sigmoid(logsnr)``
    and ``beta_t = 1 - abar(t+1)/abar(t)``. ``shift`` > 0 moves the middle of the schedule to higher SNR,
    the resolution correction 2 log(64/28) of the cosine schedule (tuned at 64 px) for 28 px images;
    the truncation fixes the cleanest and the noisiest level whatever T is.
    """
    _check_num_timesteps(num_timesteps)
    if not logsnr_min < logsnr_max:
        raise InvalidScheduleError(f"need logsnr_min < logsnr_max, got {logsnr_min} and {logsnr_max}")
    if not all(math.isfinite(v) for v in (logsnr_min, logsnr_max, shift)):
        raise InvalidScheduleError("logsnr_min, logsnr_max and shift must be finite")
    a = math.atan(math.exp(-(logsnr_max - shift) / 2))
    b = math.atan(math.exp(-(logsnr_min - shift) / 2))
    u = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    logsnr = shift - 2.0 * torch.log(torch.tan(a + u * (b - a)))
    # log abar = log sigmoid(logsnr); the ratio of consecutive abars is computed in log space for accuracy
    log_abar = torch.nn.functional.logsigmoid(logsnr)
    return -torch.expm1(log_abar[1:] - log_abar[:-1])
