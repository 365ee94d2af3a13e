"""Exponential moving average of model weights with the reference warm-up schedule."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["EMA", "ema_decay"]

NamedTensors = Iterator[tuple[str, torch.Tensor]]


def ema_decay(
    step: int, *, warmup_steps: int = 100, max_decay: float = 0.995, power: float = 2.0 / 3.0
) -> float:
    """Decay used at optimiser step ``step`` (counted from 0) once the warm-up is over.

    ``clip(1 - (1 + max(step - warmup_steps - 1, 0))^(-power), 0, max_decay)``: 0.769 at step 109,
    0.953 at 199, 0.989 at 999 and ``max_decay`` from step ~2,929 with the defaults.
    """
    elapsed = max(step - warmup_steps - 1, 0)
    return min(max(1.0 - (1.0 + elapsed) ** (-power), 0.0), max_decay)


def _matched(shadow: NamedTensors, model: NamedTensors) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pair tensors by name; a model that is not the one the shadow was copied from is an error."""
    shadow_map, model_map = dict(shadow), dict(model)
    if shadow_map.keys() != model_map.keys():
        differing = sorted(shadow_map.keys() ^ model_map.keys())
        raise ValueError(f"model does not match the EMA shadow; tensors present in only one: {differing[:5]}")
    return [(shadow_map[name], model_map[name]) for name in shadow_map]


class EMA:
    """Shadow copy of a model, updated as in the reference training loop.

    * step + 1 <= warmup_steps: the shadow is a plain copy of the model;
    * afterwards, only when (step + 1) % update_every == 0:
      shadow <- decay · shadow + (1 - decay) · model, with decay from :func:`ema_decay`.

    Parameters are averaged; buffers (e.g. BatchNorm running statistics) are copied whenever an update
    runs, since they are statistics of the current weights, not weights. ``shadow`` is a deep copy of
    the model in eval mode without gradients, ready for sampling.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        warmup_steps: int = 100,
        update_every: int = 10,
        max_decay: float = 0.995,
        power: float = 2.0 / 3.0,
    ) -> None:
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if update_every < 1:
            raise ValueError(f"update_every must be >= 1, got {update_every}")
        if not 0.0 <= max_decay < 1.0:
            raise ValueError(f"max_decay must lie in [0, 1), got {max_decay}")
        if power <= 0.0:
            raise ValueError(f"power must be > 0, got {power}")
        self.warmup_steps = warmup_steps
        self.update_every = update_every
        self.max_decay = max_decay
        self.power = power
        self.shadow = copy.deepcopy(model)
        self.shadow.eval().requires_grad_(False)

    def decay(self, step: int) -> float:
        return ema_decay(step, warmup_steps=self.warmup_steps, max_decay=self.max_decay, power=self.power)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> float | None:
        """Fold ``model`` into the shadow after optimiser step ``step`` (from 0).

        Returns the decay that was applied (0.0 for a warm-up copy) or None when this step is skipped.
        """
        if step + 1 <= self.warmup_steps:
            decay = 0.0
        elif (step + 1) % self.update_every == 0:
            decay = self.decay(step)
        else:
            return None
        for shadow_p, model_p in _matched(self.shadow.named_parameters(), model.named_parameters()):
            source = model_p.detach().to(device=shadow_p.device, dtype=shadow_p.dtype)
            if decay == 0.0:
                shadow_p.copy_(source)
            else:
                shadow_p.lerp_(source, 1.0 - decay)
        for shadow_b, model_b in _matched(self.shadow.named_buffers(), model.named_buffers()):
            shadow_b.copy_(model_b.detach())
        return decay

    def state_dict(self) -> dict[str, Any]:
        return {
            "shadow": self.shadow.state_dict(),
            "warmup_steps": self.warmup_steps,
            "update_every": self.update_every,
            "max_decay": self.max_decay,
            "power": self.power,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the shadow weights; the EMA settings in ``state`` must match this object's."""
        for key in ("warmup_steps", "update_every", "max_decay", "power"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"EMA checkpoint has {key}={state[key]!r} but this EMA uses {getattr(self, key)!r}; "
                    "construct the EMA with the checkpoint's settings"
                )
        self.shadow.load_state_dict(state["shadow"])
