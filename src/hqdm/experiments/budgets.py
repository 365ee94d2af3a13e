"""Compute budgets of ``hqdm reproduce``: how long each table cell trains and how it is evaluated.

The reasoning behind the numbers (measured costs on a 2-core CPU) is in docs/reproduce.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from hqdm.config import ConfigError
from hqdm.experiments.evaluate_checkpoint import EvalSettings

__all__ = ["BUDGETS", "Budget", "get_budget"]


@dataclass(frozen=True)
class Budget:
    """Training length, data, sample grids and evaluation settings shared by every cell of a table."""

    name: str
    epochs: int  # epochs over the training set (over the fixed subset when train_subset is set)
    batch_size: int
    train_subset: int | None  # None: the whole train split; else this many images picked with seed 0
    finetune_epochs: int | None  # transfer column: hybrid epochs at the end; None: the paper's (1 / 2)
    grid_epochs: tuple[int, ...]
    grid_sampler: str
    grid_steps: int
    grid_images: int
    evaluation: EvalSettings
    embedded_data: bool = False  # use the subset shipped with hqdm (no data files needed)
    checkpoint_every: int = 1000
    precision: str = "auto"  # training.precision of every cell (auto: bf16 where the hardware has it)

    def with_overrides(self, **changes: Any) -> Budget:
        """A copy with some fields changed; ``evaluation`` may be given as a dict of EvalSettings fields."""
        evaluation = changes.pop("evaluation", None)
        if isinstance(evaluation, dict):
            changes["evaluation"] = replace(self.evaluation, **evaluation)
        elif evaluation is not None:
            changes["evaluation"] = evaluation
        return replace(self, **changes)


PAPER = Budget(
    name="paper",
    epochs=20,
    batch_size=128,
    train_subset=None,
    finetune_epochs=None,
    grid_epochs=(1, 10, 20),
    grid_sampler="ddpm",
    grid_steps=1000,
    grid_images=64,
    evaluation=EvalSettings(num_samples=7000, sampler="ddpm", steps=1000, metrics=("fid", "kid", "is")),
)

# Sized from measurements on the 2-core development machine (docs/reproduce.md, "The cpu budget").
CPU = Budget(
    name="cpu",
    epochs=2,
    batch_size=32,
    train_subset=2000,
    finetune_epochs=1,
    grid_epochs=(1, 2),
    grid_sampler="ddim",
    grid_steps=10,
    grid_images=25,
    evaluation=EvalSettings(num_samples=250, sampler="ddim", steps=10, metrics=("fid", "kid", "is")),
    checkpoint_every=20,
    precision="fp32",  # the committed cpu tables trained in float32 (tests/test_budgets_pinned.py)
)

SMOKE = Budget(
    name="smoke",
    epochs=2,
    batch_size=8,
    train_subset=16,
    finetune_epochs=1,
    grid_epochs=(1, 2),
    grid_sampler="ddim",
    grid_steps=2,
    grid_images=4,
    evaluation=EvalSettings(
        num_samples=8, sampler="ddim", steps=2, metrics=("fid", "kid", "is"), batch_size=8, kid_subset_size=4
    ),
    embedded_data=True,
    checkpoint_every=1000,
)

BUDGETS = {budget.name: budget for budget in (SMOKE, CPU, PAPER)}


def get_budget(name: str) -> Budget:
    try:
        return BUDGETS[name]
    except KeyError:
        raise ConfigError(f"--budget: unknown budget {name!r}; choose from {', '.join(BUDGETS)}") from None
