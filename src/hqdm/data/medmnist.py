"""PathMNIST from the MedMNIST ``pathmnist.npz`` file, which users download themselves."""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from hqdm.data.errors import CorruptDatasetError, DatasetNotFoundError
from hqdm.data.locate import DATA_DIR_ENV, user_cache_root
from hqdm.data.registry import (
    IMAGE_SIZE,
    PATHMNIST,
    PATHMNIST_FILE,
    PATHMNIST_NUM_CLASSES,
    PATHMNIST_SOURCES,
)

_CHANNELS = 3


def pathmnist_candidates(data_dir: str | Path | None) -> list[tuple[Path, str]]:
    """Candidate ``.npz`` paths in priority order, each with why it is searched."""
    candidates: list[tuple[Path, str]] = []
    for root, origin in ((data_dir, "data_dir / --data-dir"), (os.environ.get(DATA_DIR_ENV), DATA_DIR_ENV)):
        if not root:
            continue
        path = Path(root).expanduser()
        if path.suffix == ".npz" or path.is_file():
            candidates.append((path, origin))  # the file itself was given
        else:
            candidates += [(path / PATHMNIST / PATHMNIST_FILE, origin), (path / PATHMNIST_FILE, origin)]
    candidates.append((user_cache_root() / PATHMNIST / PATHMNIST_FILE, "user cache"))
    return candidates


def find_pathmnist(data_dir: str | Path | None) -> Path:
    candidates = pathmnist_candidates(data_dir)
    for path, _ in candidates:
        if path.is_file():
            return path
    raise DatasetNotFoundError(_not_found_message(candidates))


def _not_found_message(candidates: list[tuple[Path, str]]) -> str:
    lines = [f"PathMNIST file {PATHMNIST_FILE} not found. Places searched, in order:"]
    lines += [f"  {i}. {path} ({origin})" for i, (path, origin) in enumerate(candidates, start=1)]
    lines += [
        f"It cannot be downloaded automatically. Get {PATHMNIST_FILE} (MedMNIST, CC BY 4.0) from",
        *(f"  - {source}" for source in PATHMNIST_SOURCES),
        "then pass it:",
        f"  - --data-dir /path/to/{PATHMNIST_FILE} (Python: data_dir=...), or the folder holding it",
        f"  - or set {DATA_DIR_ENV} to the folder holding it (or holding {PATHMNIST}/{PATHMNIST_FILE})",
        f"  - or copy it to {user_cache_root() / PATHMNIST / PATHMNIST_FILE}",
    ]
    return "\n".join(lines)


def load_pathmnist_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images as uint8 (N, 3, 28, 28) and labels as int64 (N,) from a MedMNIST npz."""
    images_key, labels_key = f"{split}_images", f"{split}_labels"
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in (images_key, labels_key) if key not in npz.files]
            if missing:
                raise CorruptDatasetError(
                    f"{path}: missing array(s) {', '.join(missing)}; "
                    f"it holds {', '.join(npz.files) or 'nothing'}"
                )
            images, labels = npz[images_key], npz[labels_key]
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        raise CorruptDatasetError(f"{path}: not a readable .npz file ({exc})") from exc
    _validate(path, split, images, labels)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), labels.reshape(-1).astype(np.int64)


def _validate(path: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    expected = (IMAGE_SIZE, IMAGE_SIZE, _CHANNELS)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != expected:
        raise CorruptDatasetError(
            f"{path}: {split}_images is {images.dtype} {images.shape}, "
            f"expected uint8 (N, {IMAGE_SIZE}, {IMAGE_SIZE}, {_CHANNELS})"
        )
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape not in ((len(labels),), (len(labels), 1)):
        raise CorruptDatasetError(
            f"{path}: {split}_labels is {labels.dtype} {labels.shape}, expected integers (N, 1)"
        )
    if len(images) != len(labels):
        raise CorruptDatasetError(
            f"{path}: image/label count mismatch in split {split!r}: "
            f"{len(images)} images, {len(labels)} labels"
        )
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= PATHMNIST_NUM_CLASSES):
        raise CorruptDatasetError(f"{path}: {split}_labels has values outside 0..{PATHMNIST_NUM_CLASSES - 1}")
