"""The small real subset shipped inside the package, so demos run with no data set-up."""

from __future__ import annotations

import zipfile
from importlib import resources

import numpy as np

from hqdm.data.errors import CorruptDatasetError, DatasetNotFoundError
from hqdm.data.registry import IMAGE_SIZE

EMBEDDED_FILE = "embedded_subset.npz"


def array_key(source_name: str, field: str) -> str:
    """npz key for one array, e.g. ``fashion_mnist_images`` (shared with the build script)."""
    return f"{source_name.replace('-', '_')}_{field}"


def load_embedded(source_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 1, 28, 28) and labels int64 (N,) of the shipped subset of ``source_name``."""
    resource = resources.files("hqdm") / "assets" / EMBEDDED_FILE
    if not resource.is_file():
        raise DatasetNotFoundError(
            f"the embedded subset {resource} is missing from this installation; reinstall hqdm "
            "or rebuild it with scripts/make_embedded_subset.py --data-dir DIR"
        )
    keys = (array_key(source_name, "images"), array_key(source_name, "labels"))
    try:
        with resource.open("rb") as handle, np.load(handle, allow_pickle=False) as npz:
            if any(key not in npz.files for key in keys):
                raise CorruptDatasetError(f"{resource}: lacks arrays {keys}; it holds {npz.files}")
            images, labels = (npz[key] for key in keys)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CorruptDatasetError(f"{resource}: not a readable .npz file ({exc})") from exc
    if images.dtype != np.uint8 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or len(images) != len(labels):
        raise CorruptDatasetError(
            f"{resource}: unexpected arrays {images.dtype} {images.shape}, labels {labels.shape}"
        )
    return images[:, None], labels.astype(np.int64)
