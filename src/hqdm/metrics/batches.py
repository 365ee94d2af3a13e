"""Streaming images through a network in bounded batches, so no (N, 3, 299, 299) tensor is ever built."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from hqdm.metrics.images import check_uint8_images
from hqdm.progress import progress_iter


def iter_image_batches(images: Iterable[Tensor] | Tensor, batch_size: int, name: str) -> Iterator[Tensor]:
    """Yield validated uint8 batches of at most ``batch_size`` images from a tensor or an iterable of them.

    A tensor is sliced into views; an iterable is consumed lazily and large yielded batches are split.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    sources = [images] if isinstance(images, Tensor) else images
    for index, batch in enumerate(sources):
        check_uint8_images(batch, f"{name} batch {index}")
        yield from batch.split(batch_size)


def with_progress(
    batches: Iterable[Tensor], enabled: bool, description: str, total: int | None = None
) -> Iterable[Tensor]:
    return progress_iter(batches, desc=description, unit="batch", enabled=enabled, total=total)


def map_batches(
    fn: Callable[[Tensor], Tensor],
    images: Iterable[Tensor] | Tensor,
    *,
    batch_size: int,
    device: torch.device | str | None = None,
    progress: bool = False,
    name: str = "images",
) -> Tensor:
    """Concatenate ``fn(batch)`` over all batches, each moved to ``device``; results gathered on the CPU."""
    total = -(-len(images) // batch_size) if isinstance(images, Tensor) and batch_size > 0 else None
    outputs = [
        fn(batch.to(device) if device is not None else batch).cpu()
        for batch in with_progress(iter_image_batches(images, batch_size, name), progress, name, total)
    ]
    if not outputs:
        raise ValueError(f"{name} is empty: at least one image is needed.")
    return torch.cat(outputs)


class PrecomputedFeatures(nn.Module):
    """Identity ``feature=`` module for torchmetrics, used to feed features (or logits) extracted earlier."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        if features.dim() != 2 or features.shape[1] != self.num_features:
            raise ValueError(
                f"Expected precomputed features of shape (N, {self.num_features}), "
                f"got {tuple(features.shape)}."
            )
        return features
