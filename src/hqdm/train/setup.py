"""What a training run is set up from, before its loop starts: the phases (one, or classical then hybrid
for transfer), the model factory, the device, the training images and the seeded data order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hqdm.config import Config, ConfigError, ModelConfig
from hqdm.data import load_dataset
from hqdm.models import build_model

__all__ = [
    "ModelFactory",
    "Phase",
    "check_batch_split",
    "default_model_factory",
    "epoch_permutation",
    "load_training_images",
    "plan_phases",
    "resolve_device",
]

# builds the model a ModelConfig names (tests pass small stand-ins)
ModelFactory = Callable[[ModelConfig], nn.Module]


@dataclass(frozen=True)
class Phase:
    index: int
    model_name: str
    start_epoch: int  # 0-based, inclusive
    end_epoch: int  # exclusive


def plan_phases(cfg: Config) -> list[Phase]:
    """One phase normally; with transfer, the classical phase then the hybrid fine-tune."""
    if not cfg.transfer.enabled:
        return [Phase(0, cfg.model.name, 0, cfg.training.epochs)]
    n = cfg.transfer.classical_epochs
    target = cfg.transfer.target_model or cfg.model.name
    return [Phase(0, cfg.model.name, 0, n), Phase(1, target, n, n + cfg.transfer.finetune_epochs)]


def default_model_factory(model: ModelConfig) -> nn.Module:
    return build_model(model.name, in_channels=model.in_channels, semantics=model.semantics)


def resolve_device(name: str, *, key: str = "training.device") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; errors name ``key`` (the option that set it)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"{key}: unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"{key}: {name!r} asked for, but this torch build sees no CUDA device; use auto or cpu"
        )
    return device


def load_training_images(cfg: Config) -> Tensor:
    """The configured training split as float images in [-1, 1], (N, C, 28, 28) on the CPU."""
    d = cfg.data
    try:
        dataset = load_dataset(
            d.dataset,
            "train",
            data_dir=d.data_dir,
            subset=d.subset,
            classes=d.classes,
            subset_seed=d.subset_seed,
        )
    except ValueError as err:  # names, subset sizes and class filters that do not fit the data
        raise ConfigError(f"data: {err}") from err
    if dataset.channels != cfg.model.in_channels:
        raise ConfigError(
            f"model.in_channels: is {cfg.model.in_channels} but dataset {d.dataset!r} has {dataset.channels} "
            "channel(s); set model.in_channels to match"
        )
    return dataset.to_model_range()


def epoch_permutation(seed: int, epoch: int, n: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


def check_batch_split(batch_size: int, n_images: int, world_size: int) -> None:
    """Each rank needs at least one image of every global batch, and an equal share of the full ones."""
    if batch_size % world_size:
        raise ConfigError(
            f"training.batch_size: {batch_size} is the global batch and must be divisible by the number "
            f"of processes ({world_size}); pick a multiple of {world_size} or another --nproc_per_node"
        )
    last = n_images % batch_size
    if 0 < last < world_size:
        raise ConfigError(
            f"training.batch_size: the last batch of each epoch holds {last} image(s) ({n_images} images, "
            f"batch {batch_size}), fewer than the {world_size} processes; change data.subset or the batch"
        )
