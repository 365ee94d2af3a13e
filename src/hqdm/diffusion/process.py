"""Forward process q(x_t | x_0) and the P2-weighted epsilon-prediction training loss."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .noise import GaussianNoise, NoiseSource, draw_device, sample_noise
from .schedules import NoiseSchedule

__all__ = ["EpsModel", "GaussianDiffusion", "p2_weights"]

EpsModel = Callable[[Tensor, Tensor], Tensor]
"""``model(x_t, t) -> eps_hat``: x_t of shape (B, ...), t int64 of shape (B,), output shaped like x_t."""


def p2_weights(schedule: NoiseSchedule, gamma: float = 1.0, k: float = 1.0) -> Tensor:
    """P2 loss weights ``w_t = (k + SNR_t)^(-gamma)`` (Choi et al. 2022), float64 of length T.

    With gamma = k = 1 this is ``1 - alphas_cumprod``; gamma = 0 gives the unweighted L_simple.
    """
    if not math.isfinite(gamma) or gamma < 0:
        raise ValueError(f"p2_gamma must be a finite number >= 0, got {gamma}")
    if not math.isfinite(k) or k < 0:
        raise ValueError(f"p2_k must be a finite number >= 0, got {k}")
    return (k + schedule.snr) ** (-gamma)


class GaussianDiffusion:
    """Gaussian forward process over a schedule, with the loss used to train an epsilon model.

    Randomness order per call of :meth:`training_loss`: first t (B,), then the noise. Both come from
    ``generator`` when given (drawn on its device, see :mod:`hqdm.diffusion.noise`), so saving
    ``generator.get_state()`` with a checkpoint makes training resumable bit for bit.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        *,
        p2_gamma: float = 1.0,
        p2_k: float = 1.0,
        noise: NoiseSource | None = None,
    ) -> None:
        self.schedule = schedule
        self.p2_gamma = float(p2_gamma)
        self.p2_k = float(p2_k)
        self.loss_weights = p2_weights(schedule, self.p2_gamma, self.p2_k)
        self.noise = noise if noise is not None else GaussianNoise()

    @property
    def num_timesteps(self) -> int:
        return self.schedule.num_timesteps

    def sample_timesteps(
        self, batch_size: int, *, device: torch.device, generator: torch.Generator | None = None
    ) -> Tensor:
        """t ~ U{0, ..., T-1}, int64 of shape (batch_size,) on ``device``."""
        t = torch.randint(
            0, self.num_timesteps, (batch_size,), generator=generator, device=draw_device(generator, device)
        )
        return t.to(device)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""
        if noise.shape != x0.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} must equal x0 shape {tuple(x0.shape)}")
        s = self.schedule
        return (
            s.gather(s.sqrt_alphas_cumprod, t, x0) * x0
            + s.gather(s.sqrt_one_minus_alphas_cumprod, t, x0) * noise
        )

    def weighted_loss(self, eps_hat: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """mean over the batch of w_t · mean over the other dims of (eps_hat - eps)²."""
        if eps_hat.shape != eps.shape:
            raise ValueError(
                f"the model returned shape {tuple(eps_hat.shape)}, expected {tuple(eps.shape)} (same as x0)"
            )
        per_sample = (eps_hat - eps).square().flatten(1).mean(dim=1)
        weights = self.schedule.gather(self.loss_weights, t, per_sample)
        return (weights * per_sample).mean()

    def training_loss(
        self,
        model: EpsModel,
        x0: Tensor,
        *,
        generator: torch.Generator | None = None,
        t: Tensor | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """P2-weighted epsilon loss for a batch x0 (B, ...) in [-1, 1].

        ``t`` and ``noise`` are drawn when omitted; passing them re-evaluates the same draw, e.g. to
        score the EMA model on the exact batch the online model was trained on.
        """
        if x0.ndim < 2:
            raise ValueError(f"x0 must be batched with shape (B, ...), got {tuple(x0.shape)}")
        if t is None:
            t = self.sample_timesteps(x0.shape[0], device=x0.device, generator=generator)
        if noise is None:
            noise = sample_noise(self.noise, x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = self.q_sample(x0, t, noise)
        return self.weighted_loss(model(x_t, t), noise, t)
