"""``hqdm score``: image sets named by a file or a real split, scored against a reference split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import PixelStats
from hqdm.cli import main
from hqdm.config import ConfigError
from hqdm.data import load_dataset
from hqdm.experiments.score_samples import ImageSet, load_image_set, score_image_sets
from hqdm.metrics.scores import fid_from_features

REAL = "embedded-fashion-mnist:train"  # shipped with the package: no data folder needed


def write_npz(path: Path, images: torch.Tensor) -> Path:
    np.savez_compressed(path, images=images.numpy())
    return path


@pytest.fixture(scope="module")
def embedded() -> torch.Tensor:
    return load_dataset("embedded-fashion-mnist", "train").images


def test_a_file_gives_its_first_images_and_a_split_a_seeded_subset(
    tmp_path: Path, embedded: torch.Tensor
) -> None:
    path = write_npz(tmp_path / "samples.npz", embedded[:30])
    first = load_image_set(str(path), num_images=12, seed=5, data_dir=None)
    assert torch.equal(first.images, embedded[:12]) and first.subset_seed is None
    assert load_image_set(str(path), num_images=None, seed=0, data_dir=None).images.shape[0] == 30

    picked = load_image_set(REAL, num_images=40, seed=3, data_dir=None)
    again = load_image_set(REAL, num_images=40, seed=3, data_dir=None)
    other = load_image_set(REAL, num_images=40, seed=4, data_dir=None)
    assert torch.equal(picked.images, again.images) and not torch.equal(picked.images, other.images)
    assert picked.subset_seed == 3
    assert load_image_set(REAL, num_images=None, seed=0, data_dir=None).images.shape[0] == embedded.shape[0]


@pytest.mark.parametrize(
    ("source", "num_images", "message"),
    [
        ("missing.npz", None, "no such file"),
        ("many", 31, "holds 30 images, 31 requested"),
        ("embedded-fashion-mnist:test", None, "no split 'test'"),
        (REAL, 1, "at least 2 images"),
    ],
)
def test_bad_sources_are_named_errors(
    tmp_path: Path, embedded: torch.Tensor, source: str, num_images: int | None, message: str
) -> None:
    write_npz(tmp_path / "many.npz", embedded[:30])
    if source == "many":
        source = str(tmp_path / "many.npz")
    with pytest.raises(ConfigError, match=message):
        load_image_set(source, num_images=num_images, seed=0, data_dir=str(tmp_path))


def test_scores_are_the_frechet_distance_of_the_two_sets_features(embedded: torch.Tensor) -> None:
    generated = ImageSet(embedded[:64], "a", None)
    real = ImageSet(embedded[500:700], "b", 1)
    record = score_image_sets(generated, real, metrics=("fid",), feature_extractor=PixelStats())
    by_hand = fid_from_features(PixelStats()(real.images), PixelStats()(generated.images))
    assert record["metrics"]["fid"] == pytest.approx(by_hand, rel=1e-6)
    assert record["generated"] == {"source": "a", "num_images": 64, "subset_seed": None}
    assert record["real"] == {"source": "b", "num_images": 200, "subset_seed": 1}


def test_mismatched_shapes_and_unknown_resize_are_named(embedded: torch.Tensor) -> None:
    real = ImageSet(embedded[:20], "real", None)
    with pytest.raises(ConfigError, match="image shapes differ"):
        score_image_sets(ImageSet(embedded[:20, :, :14], "half", None), real, feature_extractor=PixelStats())
    with pytest.raises(ConfigError, match="--resize: unknown mode 'nearest'"):
        score_image_sets(real, real, resize="nearest", feature_extractor=PixelStats())


def test_score_command_on_the_fid_network(
    tmp_path: Path, embedded: torch.Tensor, capsys: pytest.CaptureFixture[str]
) -> None:
    """A set scored against itself is at FID ~0 and a blank set is far; --num-generated takes the first N
    of the file, and the JSON holds what the printed line says."""
    garments = write_npz(tmp_path / "garments.npz", embedded[:24])
    blank = write_npz(tmp_path / "blank.npz", torch.zeros_like(embedded[:24]))
    scores = {}
    for name, path, first in [("self", garments, "24"), ("blank", blank, "20")]:
        out = tmp_path / f"{name}.json"
        args = ["score", str(path), "--against", str(garments), "--num-generated", first, "--metrics", "fid"]
        assert main([*args, "--json", str(out)]) == 0
        scores[name] = json.loads(out.read_text())["metrics"]
        assert f"FID {scores[name]['fid']:.2f}: {first} of {path} against 24 of" in capsys.readouterr().out
    assert scores["blank"]["num_generated"] == 20
    assert abs(scores["self"]["fid"]) < 1e-2 and scores["blank"]["fid"] > 100
