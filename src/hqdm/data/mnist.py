"""Load one split of an MNIST-style IDX dataset with every consistency check."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hqdm.data.errors import CorruptDatasetError
from hqdm.data.idx import parse_idx, read_file_bytes
from hqdm.data.locate import SearchPlace, find_idx_split
from hqdm.data.registry import IDX_DATASETS, IMAGE_SIZE, IdxDatasetSpec


@dataclass
class IdxSplit:
    """Arrays of one split plus where they came from."""

    images: np.ndarray  # uint8 (N, 28, 28)
    labels: np.ndarray  # uint8 (N,)
    place: SearchPlace
    files: list[Path]
    standard: bool  # both files match the known SHA-256 of the official release


def load_idx_split(spec: IdxDatasetSpec, split: str, data_dir: str | Path | None) -> IdxSplit:
    place, (images_path, labels_path) = find_idx_split(spec, split, data_dir)
    images_stem, labels_stem = spec.files[split]
    images, images_standard = _read_checked(spec, images_stem, images_path, expected_ndim=3)
    labels, labels_standard = _read_checked(spec, labels_stem, labels_path, expected_ndim=1)
    _validate(spec, images, labels, images_path, labels_path)
    return IdxSplit(images, labels, place, [images_path, labels_path], images_standard and labels_standard)


def _read_checked(spec: IdxDatasetSpec, stem: str, path: Path, expected_ndim: int) -> tuple[np.ndarray, bool]:
    data = read_file_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    _reject_known_other_file(spec, stem, path, digest)
    return parse_idx(data, expected_ndim, path), digest == spec.sha256.get(stem)


def _reject_known_other_file(spec: IdxDatasetSpec, stem: str, path: Path, digest: str) -> None:
    """Catch e.g. an MNIST folder passed for Fashion-MNIST: both parse fine but are different data."""
    for other in IDX_DATASETS.values():
        for other_stem, other_digest in other.sha256.items():
            if digest == other_digest and (other.name, other_stem) != (spec.name, stem):
                raise CorruptDatasetError(
                    f"{path}: this is the {other.title} file {other_stem}, not {spec.title}'s {stem}; "
                    "check that the data folder belongs to the requested dataset"
                )


def _validate(
    spec: IdxDatasetSpec, images: np.ndarray, labels: np.ndarray, images_path: Path, labels_path: Path
) -> None:
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise CorruptDatasetError(
            f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, "
            f"expected {IMAGE_SIZE}x{IMAGE_SIZE}"
        )
    if len(images) != len(labels):
        raise CorruptDatasetError(
            f"image/label count mismatch: {len(images)} images in {images_path}, "
            f"{len(labels)} labels in {labels_path}"
        )
    if len(labels) and int(labels.max()) >= spec.num_classes:
        raise CorruptDatasetError(
            f"{labels_path}: label value {int(labels.max())} outside 0..{spec.num_classes - 1}"
        )
