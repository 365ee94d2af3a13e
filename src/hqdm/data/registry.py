"""What each supported dataset is: names, files, known checksums, mirrors, licences."""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_SIZE = 28


@dataclass(frozen=True)
class IdxDatasetSpec:
    """An MNIST-style dataset distributed as four IDX files."""

    name: str
    title: str
    num_classes: int
    # split -> (images file stem, labels file stem); each may exist raw or as ``<stem>.gz``.
    files: dict[str, tuple[str, str]]
    # SHA-256 of the DECOMPRESSED standard IDX files: mirrors recompress, so .gz bytes vary.
    sha256: dict[str, str]
    # Base URLs tried in order; each serves ``<stem>.gz``.
    mirrors: tuple[str, ...]
    licence: str
    debian_package: str | None = None

    def stems(self) -> list[str]:
        return [stem for pair in self.files.values() for stem in pair]


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

IDX_DATASETS: dict[str, IdxDatasetSpec] = {
    "mnist": IdxDatasetSpec(
        name="mnist",
        title="MNIST",
        num_classes=10,
        files=_IDX_FILES,
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        licence="CC BY-SA 3.0, Yann LeCun and Corinna Cortes",
    ),
    "fashion-mnist": IdxDatasetSpec(
        name="fashion-mnist",
        title="Fashion-MNIST",
        num_classes=10,
        files=_IDX_FILES,
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ),
        licence="MIT, Copyright 2017 Zalando SE",
        debian_package="dataset-fashion-mnist",
    ),
}

PATHMNIST = "pathmnist"
PATHMNIST_FILE = "pathmnist.npz"
PATHMNIST_NUM_CLASSES = 9
PATHMNIST_SPLITS = ("train", "val", "test")
PATHMNIST_SOURCES = (
    "the MedMNIST project (https://medmnist.com, https://github.com/MedMNIST/MedMNIST)",
    "its Zenodo record https://zenodo.org/records/10519652 (file pathmnist.npz, the 28x28 version)",
)

EMBEDDED_PREFIX = "embedded-"
EMBEDDED_DATASETS: dict[str, str] = {f"{EMBEDDED_PREFIX}{name}": name for name in IDX_DATASETS}

DATASET_NAMES: tuple[str, ...] = (*IDX_DATASETS, PATHMNIST, *EMBEDDED_DATASETS)


def valid_splits(name: str) -> tuple[str, ...]:
    """Splits ``name`` offers; raises ValueError for an unknown dataset name."""
    if name in IDX_DATASETS:
        return tuple(IDX_DATASETS[name].files)
    if name == PATHMNIST:
        return PATHMNIST_SPLITS
    if name in EMBEDDED_DATASETS:
        return ("train",)  # the shipped subset holds training images only
    raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")


def check_split(name: str, split: str) -> None:
    splits = valid_splits(name)
    if split not in splits:
        raise ValueError(f"dataset {name!r} has no split {split!r}; valid splits: {', '.join(splits)}")


def idx_spec(name: str) -> IdxDatasetSpec:
    """Looked up at call time so tests can swap a spec (e.g. local mirrors)."""
    valid_splits(name)
    if name not in IDX_DATASETS:
        raise ValueError(
            f"dataset {name!r} is not distributed as IDX files; IDX datasets: {', '.join(IDX_DATASETS)}"
        )
    return IDX_DATASETS[name]
