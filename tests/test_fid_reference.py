"""The FID network against reference features made by other code, and the MNIST train-vs-test anchor.

tests/data/fid_reference.json was made by ``scripts/make_fid_reference.py`` (its docstring says how): eight
images of the shipped subset, resized by Pillow's bilinear filter, scaled by numpy and run through the
network file in float64 and NCHW. hqdm runs its own resize, float32 and channels-last, so agreement
checks the preprocessing, the dtype and the layout at once.

The anchor test is slow (2,000 images through the network, 7-18 minutes on 2 CPU cores) and needs the
MNIST files; it is excluded by default. Run it with
``HQDM_DATA_DIR=/folder/with/mnist OMP_WAIT_POLICY=passive .venv/bin/python -m pytest -m slow
tests/test_fid_reference.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hqdm.data import load_dataset
from hqdm.data.embedded import load_embedded
from hqdm.metrics import FIDInceptionFeatures, InceptionPreprocess, evaluate_images

REFERENCE = Path(__file__).parent / "data" / "fid_reference.json"
#: Relative L2 distance allowed between hqdm's features and the reference, per image (block means and
#: norm). hqdm's float32 channels-last features are 2-3e-6 from the float64 reference. The smallest
#: preprocessing change tried, x / 127.5 - 1 instead of (x - 128) / 128, moves them by 2e-3; bf16
#: convolutions by 2e-2; the TF1 resize by 0.15-0.2.
TOLERANCE = 1e-4
#: docs/metrics.md, "Check of the implementation against the anchors": MNIST train vs test, 1000 vs 1000.
ANCHOR = {"fid": 11.2093, "kid_mean": 0.0000711, "kid_std": 0.0011278}

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def images(reference: dict) -> list[np.ndarray]:
    """The reference's images, (C, 28, 28) uint8 each, from the subset shipped with hqdm."""
    shipped = {name: load_embedded(name)[0] for name in ("mnist", "fashion-mnist")}
    built = [np.concatenate([shipped[name][index] for name, index in spec]) for spec in reference["images"]]
    digest = hashlib.sha256(b"".join(image.tobytes() for image in built)).hexdigest()
    assert digest == reference["images_sha256"], "the shipped subset changed: rerun make_fid_reference.py"
    return built


def _relative(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(got - expected) / np.linalg.norm(expected))


def test_fid_features_match_the_independent_reference(reference: dict, images: list[np.ndarray]) -> None:
    net = FIDInceptionFeatures()
    features = [net(torch.from_numpy(image)[None])[0].double().numpy() for image in images]
    for index, (got, expected) in enumerate(zip(features, reference["features"], strict=True)):
        blocks = got.reshape(reference["blocks"], -1).mean(axis=1)
        block_error = _relative(blocks, np.array(expected["block_means"]))
        norm_error = abs(np.linalg.norm(got) / expected["norm"] - 1)
        assert max(block_error, norm_error) < TOLERANCE, (
            f"image {index} {reference['images'][index]}: features {block_error:.2e} (block means) and "
            f"{norm_error:.2e} (norm) from the reference, allowed {TOLERANCE:.0e}"
        )


def _pillow_network_input(image: np.ndarray) -> np.ndarray:
    """Pillow's bilinear resize of every channel to 299x299, grey replicated, then (x - 128) / 128."""
    resized = [
        np.asarray(
            Image.fromarray(c.astype(np.float32), mode="F").resize((299, 299), Image.Resampling.BILINEAR)
        )
        for c in image
    ]
    return (np.stack(resized * 3 if len(resized) == 1 else resized).astype(np.float64) - 128.0) / 128.0


def test_preprocessing_matches_pillow_bilinear_and_the_tf_input_range(images: list[np.ndarray]) -> None:
    """The network input itself, without the network: locates a failure of the reference test."""
    preprocess = InceptionPreprocess()
    for image in (images[0], images[-1]):  # grey and RGB
        got = preprocess(torch.from_numpy(image)[None])[0].double().numpy()
        assert np.abs(got - _pillow_network_input(image)).max() < 1e-5


@pytest.mark.slow
def test_mnist_train_vs_test_fid_is_the_anchor(tmp_path: Path) -> None:
    """The anchor of docs/metrics.md: 1000 train vs 1000 test images (seed 0), default preprocessing, fp32."""
    data_dir = os.environ.get("HQDM_DATA_DIR")
    if not data_dir:
        pytest.skip("set HQDM_DATA_DIR to the folder holding the MNIST files (docs/data.md)")
    train = load_dataset("mnist", "train", data_dir=data_dir).images
    test = load_dataset("mnist", "test", data_dir=data_dir).images
    g = torch.Generator().manual_seed(0)
    real = train[torch.randperm(len(train), generator=g)[:1000]]
    other = test[torch.randperm(len(test), generator=g)[:1000]]
    result = evaluate_images(
        other, real, metrics=("fid", "kid"), cache_dir=tmp_path, seed=0, batch_size=100, progress=False
    )
    assert result["fid"] == pytest.approx(ANCHOR["fid"], abs=2e-3)
    assert result["kid_mean"] == pytest.approx(ANCHOR["kid_mean"], abs=5e-7)
    assert result["kid_std"] == pytest.approx(ANCHOR["kid_std"], abs=5e-7)
