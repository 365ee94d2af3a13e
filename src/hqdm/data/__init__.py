"""Datasets for hqdm: MNIST, Fashion-MNIST (IDX files), PathMNIST (MedMNIST npz) and a shipped subset.

See docs/data.md for where files are looked for and how to provide them.
"""

from hqdm.data.dataset import ImageDataset
from hqdm.data.download import DatasetDownloadError, download_dataset
from hqdm.data.errors import CorruptDatasetError, DatasetError, DatasetNotFoundError
from hqdm.data.loading import DatasetReport, SplitReport, check_dataset, load_dataset
from hqdm.data.locate import DATA_DIR_ENV, user_cache_root
from hqdm.data.registry import DATASET_NAMES, valid_splits

__all__ = [
    "DATASET_NAMES",
    "DATA_DIR_ENV",
    "CorruptDatasetError",
    "DatasetDownloadError",
    "DatasetError",
    "DatasetNotFoundError",
    "DatasetReport",
    "ImageDataset",
    "SplitReport",
    "check_dataset",
    "download_dataset",
    "load_dataset",
    "user_cache_root",
    "valid_splits",
]
