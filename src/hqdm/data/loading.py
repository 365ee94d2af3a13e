"""Public entry points: ``load_dataset`` and ``check_dataset``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hqdm.data.dataset import ImageDataset, select_indices
from hqdm.data.embedded import load_embedded
from hqdm.data.errors import DatasetError
from hqdm.data.medmnist import find_pathmnist, load_pathmnist_split
from hqdm.data.mnist import load_idx_split
from hqdm.data.registry import EMBEDDED_DATASETS, IDX_DATASETS, check_split, valid_splits


@dataclass
class _RawSplit:
    images: np.ndarray  # uint8 (N, C, 28, 28)
    labels: np.ndarray  # integer (N,)
    source: str
    standard: bool | None  # matches the official release checksums; None where none are known


def load_dataset(
    name: str,
    split: str = "train",
    *,
    data_dir: str | Path | None = None,
    subset: int | None = None,
    classes: Sequence[int] | None = None,
    subset_seed: int = 0,
) -> ImageDataset:
    """Load ``split`` of dataset ``name`` (see ``DATASET_NAMES``), optionally filtered and subsampled.

    ``classes`` keeps only those labels; ``subset`` then picks that many images at random with
    ``subset_seed`` (same arguments, same images, whatever the global RNG state). ``data_dir`` is
    searched first (see docs/data.md); the embedded datasets ignore it.
    """
    check_split(name, split)
    raw = _read_split(name, split, data_dir)
    keep = select_indices(raw.labels, subset=subset, classes=classes, subset_seed=subset_seed)
    images = torch.from_numpy(np.ascontiguousarray(raw.images[keep]))
    labels = torch.from_numpy(raw.labels[keep].astype(np.int64))
    return ImageDataset(images=images, labels=labels, name=name, split=split)


def _read_split(name: str, split: str, data_dir: str | Path | None) -> _RawSplit:
    if name in IDX_DATASETS:
        loaded = load_idx_split(IDX_DATASETS[name], split, data_dir)
        source = ", ".join(str(p) for p in loaded.files)
        return _RawSplit(loaded.images[:, None], loaded.labels, source, loaded.standard)
    if name in EMBEDDED_DATASETS:
        images, labels = load_embedded(EMBEDDED_DATASETS[name])
        return _RawSplit(images, labels, "embedded subset shipped with hqdm", None)
    path = find_pathmnist(data_dir)
    images, labels = load_pathmnist_split(path, split)
    return _RawSplit(images, labels, str(path), None)


@dataclass
class SplitReport:
    """Outcome of checking one split: counts when it loaded, the error message when not."""

    split: str
    ok: bool
    source: str | None = None
    num_images: int = 0
    image_shape: tuple[int, ...] = ()
    label_counts: dict[int, int] = field(default_factory=dict)
    standard: bool | None = None
    problem: str | None = None

    def format(self) -> str:
        if not self.ok:
            return f"[{self.split}] FAILED: {self.problem}"
        checksum = {True: "matches the official release", False: "NOT the official release", None: "n/a"}
        counts = ", ".join(f"{label}: {n}" for label, n in self.label_counts.items())
        return (
            f"[{self.split}] OK: {self.num_images} images of shape {self.image_shape} from {self.source}\n"
            f"    label counts: {counts}\n    checksum: {checksum[self.standard]}"
        )


@dataclass
class DatasetReport:
    name: str
    splits: list[SplitReport]

    @property
    def ok(self) -> bool:
        return all(split.ok for split in self.splits)

    def format(self) -> str:
        return "\n".join(
            [f"{self.name}: {'OK' if self.ok else 'PROBLEMS'}", *(s.format() for s in self.splits)]
        )


def check_dataset(name: str, data_dir: str | Path | None = None) -> DatasetReport:
    """Try to load every split of ``name``; report counts, or the reason a split is unusable."""
    return DatasetReport(name, [_check_split(name, split, data_dir) for split in valid_splits(name)])


def _check_split(name: str, split: str, data_dir: str | Path | None) -> SplitReport:
    try:
        raw = _read_split(name, split, data_dir)
    except DatasetError as exc:
        return SplitReport(split=split, ok=False, problem=str(exc))
    labels, counts = np.unique(raw.labels, return_counts=True)
    return SplitReport(
        split=split,
        ok=True,
        source=raw.source,
        num_images=len(raw.images),
        image_shape=tuple(raw.images.shape[1:]),
        label_counts={int(label): int(n) for label, n in zip(labels, counts, strict=True)},
        standard=raw.standard,
    )
