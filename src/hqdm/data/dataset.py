"""The in-memory dataset type every loader returns, and deterministic subset selection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ImageDataset:
    """Images kept as uint8 (N, C, H, W) so they stay small; convert per batch for the model."""

    images: torch.Tensor  # uint8 (N, C, 28, 28), C = 1 or 3
    labels: torch.Tensor  # int64 (N,)
    name: str
    split: str

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] not in (1, 3):
            raise ValueError(
                f"images must be uint8 (N, C, H, W) with C in (1, 3), got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be int64 of shape ({self.images.shape[0]},), got {self.labels.dtype} "
                f"{tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def to_model_range(self) -> torch.Tensor:
        """float32 in [-1, 1] (x / 255 * 2 - 1), on the images' device."""
        return self.images.to(torch.float32) / 255 * 2 - 1


def select_indices(
    labels: np.ndarray, *, subset: int | None, classes: Sequence[int] | None, subset_seed: int
) -> np.ndarray:
    """Sorted indices after the class filter and a seeded random subset.

    Uses its own generator, so the choice depends only on the arguments, never on global RNG state.
    """
    indices = np.arange(len(labels))
    if classes is not None:
        indices = indices[np.isin(labels, _check_classes(labels, classes))]
    if subset is None:
        return indices
    if isinstance(subset, bool) or not isinstance(subset, int | np.integer) or subset <= 0:
        raise ValueError(f"subset must be a positive integer, got {subset!r}")
    if subset > len(indices):
        where = f" in classes {sorted(set(classes))}" if classes is not None else ""
        raise ValueError(f"subset={subset} is larger than the {len(indices)} images available{where}")
    rng = np.random.default_rng(subset_seed)
    return np.sort(rng.choice(indices, size=subset, replace=False))


def _check_classes(labels: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    wanted = np.unique(np.asarray(list(classes)))
    if wanted.size == 0 or not np.issubdtype(wanted.dtype, np.integer):
        raise ValueError(f"classes must be a non-empty list of integer labels, got {list(classes)!r}")
    absent = np.setdiff1d(wanted, labels)
    if absent.size:
        present = np.unique(labels).tolist()
        raise ValueError(
            f"class filter {wanted.tolist()}: no images with label(s) {absent.tolist()}; "
            f"labels present: {present}"
        )
    return wanted
