"""Tests for hqdm.data on small IDX/npz files written here, plus the shipped embedded subset."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
import torch

import hqdm.data.download as download_module
from hqdm.data import (
    DATASET_NAMES,
    CorruptDatasetError,
    DatasetDownloadError,
    DatasetError,
    DatasetNotFoundError,
    ImageDataset,
    check_dataset,
    download_dataset,
    load_dataset,
)
from hqdm.data import locate as locate_module
from hqdm.data.registry import IDX_DATASETS

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
REPO = Path(__file__).resolve().parents[1]


def idx_bytes(array: np.ndarray) -> bytes:
    """Independent IDX encoder: magic 0x0000_08_ndim, big-endian sizes, raw uint8 data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def make_split(n: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose first pixel encodes their index (to check image/label alignment), labels i % 10."""
    rng = np.random.default_rng(n + offset)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = (np.arange(n) + offset) % 256
    return images, (np.arange(n) % 10).astype(np.uint8)


def write_file(directory: Path, stem: str, content: bytes, gz: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (f"{stem}.gz" if gz else stem)
    path.write_bytes(gzip.compress(content) if gz else content)
    return path


def write_idx_dataset(directory: Path, n_train: int = 30, n_test: int = 20, gz: bool = True) -> dict:
    arrays = {}
    for (images_stem, labels_stem), n in (
        ((TRAIN_IMAGES, TRAIN_LABELS), n_train),
        ((TEST_IMAGES, TEST_LABELS), n_test),
    ):
        images, labels = make_split(n)
        write_file(directory, images_stem, idx_bytes(images), gz)
        write_file(directory, labels_stem, idx_bytes(labels), gz)
        arrays[images_stem], arrays[labels_stem] = images, labels
    return arrays


@pytest.fixture(autouse=True)
def isolated_locations(tmp_path, monkeypatch):
    """Point the Debian root and the user cache into tmp_path; clear HQDM_DATA_DIR."""
    monkeypatch.setattr(locate_module, "DEBIAN_DATASETS_ROOT", tmp_path / "debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("HQDM_DATA_DIR", raising=False)
    return tmp_path


# --- IDX reading -------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_reads_idx_files_exactly(tmp_path, gz):
    arrays = write_idx_dataset(tmp_path / "d", gz=gz)
    train = load_dataset("mnist", "train", data_dir=tmp_path / "d")
    test = load_dataset("mnist", "test", data_dir=tmp_path / "d")
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.images.shape == (30, 1, 28, 28) and test.images.shape == (20, 1, 28, 28)
    np.testing.assert_array_equal(train.images[:, 0].numpy(), arrays[TRAIN_IMAGES])
    np.testing.assert_array_equal(test.labels.numpy(), arrays[TEST_LABELS])
    assert (train.name, train.split, train.channels, len(train)) == ("mnist", "train", 1, 30)


def test_raw_file_preferred_over_gz_in_same_folder(tmp_path):
    write_idx_dataset(tmp_path / "d", n_train=30, gz=True)
    write_idx_dataset(tmp_path / "d", n_train=40, gz=False)
    assert len(load_dataset("fashion-mnist", data_dir=tmp_path / "d")) == 40


# --- search order --------------------------------------------------------------------------------------


def test_search_order(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "explicit", n_train=11)
    write_idx_dataset(tmp_path / "env" / "fashion-mnist", n_train=12)  # parent layout
    write_idx_dataset(tmp_path / "debian" / "fashion-mnist", n_train=13)
    write_idx_dataset(tmp_path / "xdg-cache" / "hqdm" / "datasets" / "fashion-mnist", n_train=14)
    monkeypatch.setenv("HQDM_DATA_DIR", str(tmp_path / "env"))

    assert len(load_dataset("fashion-mnist", data_dir=tmp_path / "explicit")) == 11
    assert len(load_dataset("fashion-mnist")) == 12
    monkeypatch.delenv("HQDM_DATA_DIR")
    assert len(load_dataset("fashion-mnist")) == 13
    monkeypatch.setattr(locate_module, "DEBIAN_DATASETS_ROOT", tmp_path / "nowhere")
    assert len(load_dataset("fashion-mnist")) == 14


def test_parent_layout_for_data_dir_and_direct_layout_for_env(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "root" / "mnist", n_train=15)
    write_idx_dataset(tmp_path / "direct", n_train=16)
    assert len(load_dataset("mnist", data_dir=tmp_path / "root")) == 15
    monkeypatch.setenv("HQDM_DATA_DIR", str(tmp_path / "direct"))
    assert len(load_dataset("mnist")) == 16


def test_place_with_incomplete_files_is_skipped(tmp_path):
    images, _ = make_split(10)
    write_file(tmp_path / "partial", TRAIN_IMAGES, idx_bytes(images), gz=True)
    write_idx_dataset(tmp_path / "xdg-cache" / "hqdm" / "datasets" / "mnist", n_train=17)
    assert len(load_dataset("mnist", data_dir=tmp_path / "partial")) == 17


def test_missing_files_message_lists_files_places_and_instructions(tmp_path, monkeypatch):
    images, _ = make_split(10)
    write_file(tmp_path / "partial", TRAIN_IMAGES, idx_bytes(images), gz=False)
    monkeypatch.setenv("HQDM_DATA_DIR", str(tmp_path / "envdir"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", data_dir=tmp_path / "partial")
    message = str(info.value)
    assert f"{TRAIN_IMAGES}[.gz]" in message and f"{TRAIN_LABELS}[.gz]" in message
    places = [
        tmp_path / "partial" / "fashion-mnist",
        tmp_path / "partial",
        tmp_path / "envdir" / "fashion-mnist",
        tmp_path / "envdir",
        tmp_path / "debian" / "fashion-mnist",
        tmp_path / "xdg-cache" / "hqdm" / "datasets" / "fashion-mnist",
    ]
    positions = [message.index(f"{place} (") for place in places]
    assert positions == sorted(positions)
    partial_line = next(line for line in message.splitlines() if f"{tmp_path / 'partial'} (" in line)
    assert f"missing {TRAIN_LABELS}" in partial_line and TRAIN_IMAGES not in partial_line.split("missing")[1]
    for hint in (
        "--data-dir",
        "HQDM_DATA_DIR",
        "apt-get install dataset-fashion-mnist",
        "hqdm data download fashion-mnist",
    ):
        assert hint in message


def test_missing_mnist_message_has_no_debian_package_hint():
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", "test")
    message = str(info.value)
    assert "apt-get" not in message and "hqdm data download mnist" in message and TEST_LABELS in message


# --- corruption -------------------------------------------------------------------------------------------


def _valid_images() -> bytes:
    return idx_bytes(make_split(30)[0])


CORRUPTIONS = {
    "wrong magic": (TRAIN_IMAGES, lambda: b"\x00\x00\x09\x03" + _valid_images()[4:], False, "magic"),
    "labels magic on images": (TRAIN_IMAGES, lambda: idx_bytes(make_split(30)[1]), False, "dimension"),
    "wrong dimension count": (
        TRAIN_IMAGES,
        lambda: idx_bytes(make_split(30)[0].reshape(30, 28, 7, 4)),
        False,
        "dimension",
    ),
    "truncated data raw": (TRAIN_IMAGES, lambda: _valid_images()[:-100], False, "shorter than the header"),
    "truncated data gz": (TRAIN_IMAGES, lambda: _valid_images()[:-1], True, "shorter than the header"),
    "truncated header": (TRAIN_LABELS, lambda: bytes([0, 0, 8, 1, 0]), False, "truncated header"),
    "trailing bytes": (
        TRAIN_LABELS,
        lambda: idx_bytes(make_split(30)[1]) + b"\x00\x01",
        False,
        "unexpected bytes",
    ),
    "count mismatch": (TRAIN_LABELS, lambda: idx_bytes(make_split(29)[1]), True, "count mismatch"),
    "wrong image size": (TRAIN_IMAGES, lambda: idx_bytes(np.zeros((30, 32, 32), np.uint8)), True, "32x32"),
    "label out of range": (
        TRAIN_LABELS,
        lambda: idx_bytes(np.full(30, 10, np.uint8)),
        True,
        "label value 10",
    ),
    "empty file": (TRAIN_LABELS, lambda: b"", False, "too short"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_idx_files_raise_named_error(tmp_path, case):
    stem, make_content, gz, expected_text = CORRUPTIONS[case]
    write_idx_dataset(tmp_path / "d", gz=True)
    (tmp_path / "d" / f"{stem}.gz").unlink()
    bad = write_file(tmp_path / "d", stem, make_content(), gz)
    with pytest.raises(CorruptDatasetError) as info:
        load_dataset("mnist", data_dir=tmp_path / "d")
    assert expected_text in str(info.value)
    assert str(bad) in str(info.value)


@pytest.mark.parametrize("content", [b"not gzip at all", None], ids=["not-gzip", "truncated-gzip"])
def test_bad_gzip_raises_named_error(tmp_path, content):
    write_idx_dataset(tmp_path / "d", gz=True)
    path = tmp_path / "d" / f"{TRAIN_IMAGES}.gz"
    path.write_bytes(content if content is not None else path.read_bytes()[:-20])
    with pytest.raises(CorruptDatasetError, match="gzip") as info:
        load_dataset("mnist", data_dir=tmp_path / "d")
    assert str(path) in str(info.value)


def test_known_file_of_other_dataset_is_rejected(tmp_path, monkeypatch):
    arrays = write_idx_dataset(tmp_path / "d")
    digest = hashlib.sha256(idx_bytes(arrays[TRAIN_IMAGES])).hexdigest()
    fashion = IDX_DATASETS["fashion-mnist"]
    monkeypatch.setitem(
        IDX_DATASETS,
        "fashion-mnist",
        dataclasses.replace(fashion, sha256={**fashion.sha256, TRAIN_IMAGES: digest}),
    )
    assert len(load_dataset("fashion-mnist", data_dir=tmp_path / "d")) == 30
    with pytest.raises(CorruptDatasetError, match="Fashion-MNIST file"):
        load_dataset("mnist", data_dir=tmp_path / "d")


# --- check_dataset ------------------------------------------------------------------------------------


def test_check_dataset_reports_counts_and_problems(tmp_path):
    write_idx_dataset(tmp_path / "d", n_train=25, n_test=12)
    report = check_dataset("mnist", tmp_path / "d")
    assert report.ok
    train, test = report.splits
    assert (train.split, train.num_images, train.image_shape) == ("train", 25, (1, 28, 28))
    assert train.label_counts == {c: int(np.sum(np.arange(25) % 10 == c)) for c in range(10)}
    assert test.num_images == 12 and train.standard is False
    assert "25 images" in report.format()

    (tmp_path / "d" / f"{TEST_LABELS}.gz").unlink()
    report = check_dataset("mnist", tmp_path / "d")
    assert not report.ok and report.splits[0].ok and not report.splits[1].ok
    assert TEST_LABELS in report.splits[1].problem and "FAILED" in report.format()


# --- names, splits, selection -----------------------------------------------------------------------------


def test_dataset_names_and_invalid_name_or_split():
    assert set(DATASET_NAMES) == {
        "mnist",
        "fashion-mnist",
        "pathmnist",
        "embedded-mnist",
        "embedded-fashion-mnist",
    }
    with pytest.raises(ValueError, match="fashion-mnist") as info:
        load_dataset("cifar10")
    assert "pathmnist" in str(info.value)
    with pytest.raises(ValueError, match="train, test"):
        load_dataset("mnist", "val")
    with pytest.raises(ValueError, match="train, val, test"):
        load_dataset("pathmnist", "validation")


def test_subset_is_seeded_and_independent_of_global_rng(tmp_path):
    write_idx_dataset(tmp_path / "d", n_train=100)
    torch.manual_seed(1)
    np.random.seed(1)
    first = load_dataset("mnist", data_dir=tmp_path / "d", subset=20, subset_seed=5)
    torch.manual_seed(2)
    np.random.seed(2)
    again = load_dataset("mnist", data_dir=tmp_path / "d", subset=20, subset_seed=5)
    other = load_dataset("mnist", data_dir=tmp_path / "d", subset=20, subset_seed=6)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert not torch.equal(first.images, other.images)
    index = first.images[:, 0, 0, 0].long()  # the first pixel encodes the source index
    assert len(set(index.tolist())) == 20
    assert torch.equal(first.labels, index % 10)  # images stay paired with their labels


def test_class_filter_and_subset(tmp_path):
    write_idx_dataset(tmp_path / "d", n_train=100)
    only = load_dataset("mnist", data_dir=tmp_path / "d", classes=[7, 2])
    assert len(only) == 20 and set(only.labels.tolist()) == {2, 7}
    assert torch.equal(only.labels, only.images[:, 0, 0, 0].long() % 10)
    sub = load_dataset("mnist", data_dir=tmp_path / "d", classes=[2, 7], subset=5, subset_seed=3)
    assert len(sub) == 5 and set(sub.labels.tolist()) <= {2, 7}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"subset": 101}, "larger than the 100"),
        ({"subset": 11, "classes": [3]}, "larger than the 10"),
        ({"subset": 0}, "positive integer"),
        ({"classes": [10]}, "no images with label"),
        ({"classes": []}, "non-empty"),
    ],
)
def test_selection_errors(tmp_path, kwargs, match):
    write_idx_dataset(tmp_path / "d", n_train=100)
    with pytest.raises(ValueError, match=match):
        load_dataset("mnist", data_dir=tmp_path / "d", **kwargs)


def test_image_dataset_model_range_and_validation():
    images = (
        torch.tensor([0, 255, 51], dtype=torch.uint8).reshape(3, 1, 1, 1).expand(3, 3, 28, 28).contiguous()
    )
    dataset = ImageDataset(images=images, labels=torch.arange(3), name="x", split="train")
    scaled = dataset.to_model_range()
    assert scaled.dtype == torch.float32 and dataset.channels == 3
    assert scaled[:, 0, 0, 0].tolist() == pytest.approx([-1.0, 1.0, 51 / 255 * 2 - 1])
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(images=images.float(), labels=torch.arange(3), name="x", split="train")
    with pytest.raises(ValueError, match="int64"):
        ImageDataset(images=images, labels=torch.arange(4), name="x", split="train")


# --- PathMNIST --------------------------------------------------------------------------------------------


def write_pathmnist(path: Path, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in sizes.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 9).reshape(n, 1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return arrays


def test_pathmnist_loads_all_splits_channels_first(tmp_path):
    arrays = write_pathmnist(tmp_path / "med" / "pathmnist.npz", {"train": 18, "val": 9, "test": 11})
    for split, n in (("train", 18), ("val", 9), ("test", 11)):
        dataset = load_dataset("pathmnist", split, data_dir=tmp_path / "med" / "pathmnist.npz")
        assert dataset.images.shape == (n, 3, 28, 28) and dataset.channels == 3
        np.testing.assert_array_equal(dataset.images.permute(0, 2, 3, 1).numpy(), arrays[f"{split}_images"])
        assert dataset.labels.dtype == torch.int64 and dataset.labels.tolist() == (np.arange(n) % 9).tolist()
    by_folder = load_dataset("pathmnist", "val", data_dir=tmp_path / "med", classes=[8])
    assert by_folder.labels.tolist() == [8]


def test_pathmnist_missing_file_message(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("pathmnist", data_dir=tmp_path / "nothing-here")
    message = str(info.value)
    for hint in (
        "pathmnist.npz",
        "MedMNIST",
        "zenodo",
        "--data-dir",
        "HQDM_DATA_DIR",
        str(tmp_path / "nothing-here"),
    ):
        assert hint in message


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"train_images": np.zeros((4, 28, 28, 3), np.uint8)}, "missing array"),
        (
            {"train_images": np.zeros((4, 28, 28), np.uint8), "train_labels": np.zeros((4, 1), np.uint8)},
            "expected uint8",
        ),
        (
            {"train_images": np.zeros((4, 28, 28, 3), np.uint8), "train_labels": np.zeros((3, 1), np.uint8)},
            "mismatch",
        ),
        (
            {"train_images": np.zeros((2, 28, 28, 3), np.uint8), "train_labels": np.full((2, 1), 9)},
            "outside 0..8",
        ),
    ],
)
def test_pathmnist_corrupt_npz(tmp_path, arrays, match):
    path = tmp_path / "pathmnist.npz"
    np.savez(path, **arrays)
    with pytest.raises(CorruptDatasetError, match=match):
        load_dataset("pathmnist", data_dir=path)


def test_pathmnist_not_a_zip(tmp_path):
    (tmp_path / "pathmnist.npz").write_bytes(b"garbage" * 10)
    with pytest.raises(CorruptDatasetError, match="not a readable"):
        load_dataset("pathmnist", data_dir=tmp_path)


# --- download ------------------------------------------------------------------------------------------


@pytest.fixture
def local_mirror(tmp_path, monkeypatch):
    """Serve small gz IDX files from a file:// mirror and register their digests as the known ones."""
    arrays = write_idx_dataset(tmp_path / "mirror", n_train=21, n_test=13)
    digests = {stem: hashlib.sha256(idx_bytes(array)).hexdigest() for stem, array in arrays.items()}
    spec = dataclasses.replace(
        IDX_DATASETS["mnist"], mirrors=((tmp_path / "mirror").as_uri() + "/",), sha256=digests
    )
    monkeypatch.setitem(IDX_DATASETS, "mnist", spec)
    return spec


def test_download_from_file_url_fills_cache(tmp_path, local_mirror):
    target = download_dataset("mnist", progress=False)
    assert target == tmp_path / "xdg-cache" / "hqdm" / "datasets" / "mnist"
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{stem}.gz" for stem in local_mirror.stems())
    assert len(load_dataset("mnist")) == 21  # found in the user cache with no data_dir
    assert check_dataset("mnist").splits[1].standard is True


def test_download_skips_valid_files_and_falls_back_to_next_mirror(tmp_path, monkeypatch, local_mirror):
    spec = dataclasses.replace(
        local_mirror, mirrors=((tmp_path / "absent").as_uri() + "/", *local_mirror.mirrors)
    )
    monkeypatch.setitem(IDX_DATASETS, "mnist", spec)
    opened = []
    real_urlopen = download_module.urlopen
    monkeypatch.setattr(
        download_module, "urlopen", lambda url, **kw: opened.append(url) or real_urlopen(url, **kw)
    )
    target = download_dataset("mnist", tmp_path / "c", progress=False)
    assert target == tmp_path / "c" / "mnist" and len(load_dataset("mnist", data_dir=tmp_path / "c")) == 21
    assert len(opened) == 8  # each file: the absent mirror, then the working one
    opened.clear()
    download_dataset("mnist", tmp_path / "c", progress=False)
    assert opened == []


def test_download_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch, local_mirror):
    bad = dataclasses.replace(local_mirror, sha256={**local_mirror.sha256, TRAIN_LABELS: "0" * 64})
    monkeypatch.setitem(IDX_DATASETS, "mnist", bad)
    with pytest.raises(DatasetDownloadError, match="SHA-256") as info:
        download_dataset("mnist", tmp_path / "c", progress=False)
    assert isinstance(info.value, DatasetError) and f"{TRAIN_LABELS}.gz" in str(info.value)
    leftovers = [p.name for p in (tmp_path / "c" / "mnist").iterdir()]
    assert f"{TRAIN_LABELS}.gz" not in leftovers and not any(name.endswith(".part") for name in leftovers)


class _BrokenResponse(io.BytesIO):
    """A response that dies mid-transfer, like a dropped connection."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}

    def read(self, size: int = -1) -> bytes:
        if self.tell() > 0:
            raise ConnectionResetError("connection reset by peer")
        return super().read(10)


def test_interrupted_download_leaves_no_partial_file(tmp_path, monkeypatch, local_mirror):
    monkeypatch.setattr(download_module, "urlopen", lambda url, **kw: _BrokenResponse(b"\x1f\x8b" * 50))
    with pytest.raises(DatasetDownloadError, match="connection reset"):
        download_dataset("mnist", tmp_path / "c", progress=False)
    assert list((tmp_path / "c" / "mnist").iterdir()) == []


@pytest.mark.parametrize(
    ("name", "match"), [("pathmnist", "zenodo"), ("embedded-mnist", "ships"), ("x", "valid")]
)
def test_download_rejects_non_downloadable_names(tmp_path, name, match):
    with pytest.raises(ValueError, match=match):
        download_dataset(name, tmp_path, progress=False)


# --- embedded subset ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["embedded-mnist", "embedded-fashion-mnist"])
def test_embedded_subset_shapes_and_balance(name):
    dataset = load_dataset(name)
    assert dataset.images.shape == (2000, 1, 28, 28) and dataset.images.dtype == torch.uint8
    assert torch.bincount(dataset.labels, minlength=10).tolist() == [200] * 10
    assert 0 < dataset.images.float().mean() < 255 and dataset.images.max() == 255  # real, not blank
    subset = load_dataset(name, subset=30, classes=[4], subset_seed=1)
    assert len(subset) == 30 and set(subset.labels.tolist()) == {4}
    with pytest.raises(ValueError, match="valid splits: train"):
        load_dataset(name, "test")


def test_embedded_file_records_sources_and_is_small():
    path = REPO / "src" / "hqdm" / "assets" / "embedded_subset.npz"
    assert path.stat().st_size < 5_000_000
    with np.load(path) as npz:
        for key in ("mnist", "fashion_mnist"):
            indices = npz[f"{key}_source_indices"]
            assert len(np.unique(indices)) == 2000 and indices.min() >= 0 and indices.max() < 60000
        assert not np.array_equal(npz["mnist_images"], npz["fashion_mnist_images"])
        assert int(npz["per_class"]) == 200


def test_build_script_selection_is_balanced_and_seeded():
    spec = importlib.util.spec_from_file_location(
        "make_embedded_subset", REPO / "scripts" / "make_embedded_subset.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    labels = np.arange(1000) % 10
    chosen = script.balanced_indices(labels, 7, seed=3)
    assert np.bincount(labels[chosen]).tolist() == [7] * 10 and np.all(np.diff(chosen) > 0)
    assert np.array_equal(chosen, script.balanced_indices(labels, 7, seed=3))
    assert not np.array_equal(chosen, script.balanced_indices(labels, 7, seed=4))
