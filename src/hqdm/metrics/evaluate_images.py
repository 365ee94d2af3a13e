"""One entry point that scores generated images against real ones with any of FID, KID, IS and SSIM."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hqdm.metrics.batches import iter_image_batches, with_progress
from hqdm.metrics.cache import real_features
from hqdm.metrics.images import check_uint8_images
from hqdm.metrics.inception import FIDInceptionFeatures, InceptionClassifier
from hqdm.metrics.resize import TORCH_BILINEAR
from hqdm.metrics.scores import (
    IS_SPLITS,
    KID_SUBSET_SIZE,
    KID_SUBSETS,
    fid_from_features,
    inception_score_from_logits,
    kid_from_features,
)
from hqdm.metrics.ssim import NearestRealSSIM
from hqdm.registry import UnknownNameError

METRIC_NAMES = ("fid", "kid", "is", "ssim")
IS_NEEDS_CLASSIFIER = (
    "IS needs a classifier with a class-logit head, and the bundled FID Inception network has none; "
    "pass inception_weights=<TorchScript classifier> (contract in docs/metrics.md)."
)

PathArg = str | os.PathLike[str]


def _validate_metrics(metrics: Sequence[str]) -> frozenset[str]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    unknown = sorted(set(metrics) - set(METRIC_NAMES))
    if unknown:
        raise UnknownNameError("metric", unknown[0], METRIC_NAMES)
    if not metrics:
        raise ValueError(f"No metric requested; choose from {', '.join(METRIC_NAMES)}.")
    return frozenset(metrics)


def _feature_extractor(
    custom: nn.Module | None, fid_weights: PathArg | None, resize: str, precision: str, device: torch.device
) -> nn.Module:
    if custom is not None and fid_weights is not None:
        raise ValueError("Pass either feature_extractor or fid_weights, not both.")
    extractor = custom if custom is not None else FIDInceptionFeatures(fid_weights, resize, precision)
    return extractor.to(device)


def _effective_kid_subset_size(requested: int, num_real: int, num_generated: int) -> int:
    """Clamp the KID subset size to the smaller set (with a warning); the result reports the size used."""
    effective = min(requested, num_real, num_generated)
    if effective < 2:
        raise ValueError(
            f"KID needs at least 2 real and 2 generated images, got {num_real} and {num_generated}."
        )
    if effective < requested:
        warnings.warn(
            f"KID subset size {requested} is larger than the smaller set ({effective} images); "
            f"using subsets of {effective}. Values are comparable only at equal subset sizes.",
            stacklevel=3,
        )
    return effective


def evaluate_images(
    generated: Iterable[Tensor] | Tensor,
    real: Tensor,
    *,
    metrics: Sequence[str] = ("fid", "kid"),
    cache_dir: PathArg | None = None,
    resize: str = TORCH_BILINEAR,
    inception_weights: PathArg | None = None,
    fid_weights: PathArg | None = None,
    feature_precision: str = "fp32",
    kid_subset_size: int = KID_SUBSET_SIZE,
    kid_subsets: int = KID_SUBSETS,
    seed: int = 0,
    batch_size: int = 50,
    device: torch.device | str | None = None,
    progress: bool = True,
    feature_extractor: nn.Module | None = None,
) -> dict[str, Any]:
    """Score uint8 generated images (a tensor or an iterable of batches) against uint8 real images.

    Generated images are streamed once in batches of at most ``batch_size``; real-image features are
    cached under ``cache_dir``. The result has ``num_generated``/``num_real`` and, per requested metric:
    fid -> ``fid``; kid -> ``kid_mean``, ``kid_std``, ``kid_subset_size`` (the size actually used: clamped,
    with a warning, when a set is smaller); is -> ``is_mean``, ``is_std``, ``is_unavailable_reason``
    (None numbers plus a reason without ``inception_weights`` or with fewer than 10 images); ssim -> ``ssim``.
    ``feature_extractor`` replaces the FID Inception network (it needs ``num_features`` and ``cache_key``);
    ``feature_precision`` (``fp32``/``bf16``) is the FID network's precision (docs/metrics.md).
    ``device`` defaults to the device of ``real``; ``seed`` fixes the KID subsets and IS split order.
    """
    names = _validate_metrics(metrics)
    real = check_uint8_images(real, "real")
    device = torch.device(device) if device is not None else real.device
    result: dict[str, Any] = {"num_real": real.shape[0]}

    extractor = None
    if names & {"fid", "kid"}:
        extractor = _feature_extractor(feature_extractor, fid_weights, resize, feature_precision, device)
        real_feats = real_features(
            real, extractor, cache_dir=cache_dir, batch_size=batch_size, device=device, progress=progress
        )
    classifier = None
    if "is" in names and inception_weights is not None:
        classifier = InceptionClassifier(inception_weights, resize).to(device)
    ssim = NearestRealSSIM(real, device) if "ssim" in names else None

    outputs = _GeneratedOutputs(extractor, classifier, ssim)
    for batch in with_progress(iter_image_batches(generated, batch_size, "generated"), progress, "generated"):
        outputs.add(batch.to(device))
    if outputs.count == 0:
        raise ValueError("generated is empty: at least one image is needed.")
    result["num_generated"] = outputs.count

    if extractor is not None:
        fake_feats, real_feats = outputs.features().to(device), real_feats.to(device)
        if "fid" in names:
            result["fid"] = fid_from_features(real_feats, fake_feats)
        if "kid" in names:
            subset = _effective_kid_subset_size(kid_subset_size, real.shape[0], outputs.count)
            result["kid_mean"], result["kid_std"] = kid_from_features(
                real_feats, fake_feats, subset_size=subset, subsets=kid_subsets, seed=seed
            )
            result["kid_subset_size"] = subset
    if "is" in names:
        result.update(_inception_score(outputs, seed))
    if ssim is not None:
        result["ssim"] = ssim.compute()
    return result


class _GeneratedOutputs:
    """What one pass over the generated batches keeps: features, IS logits and the SSIM running mean."""

    def __init__(
        self, extractor: nn.Module | None, classifier: nn.Module | None, ssim: NearestRealSSIM | None
    ) -> None:
        self.extractor, self.classifier, self.ssim = extractor, classifier, ssim
        self.count = 0
        self._features: list[Tensor] = []
        self._logits: list[Tensor] = []

    def add(self, batch: Tensor) -> None:
        self.count += batch.shape[0]
        if self.extractor is not None:
            self._features.append(self.extractor(batch).float().cpu())
        if self.classifier is not None:
            self._logits.append(self.classifier(batch).cpu())
        if self.ssim is not None:
            self.ssim.update(batch)

    def features(self) -> Tensor:
        return torch.cat(self._features)

    def logits(self) -> Tensor:
        return torch.cat(self._logits)


def _inception_score(outputs: _GeneratedOutputs, seed: int) -> dict[str, Any]:
    """IS entries of the result: numbers, or None plus the reason they cannot be computed."""
    reason = None
    if outputs.classifier is None:
        reason = IS_NEEDS_CLASSIFIER
    elif outputs.count < IS_SPLITS:
        reason = f"IS uses {IS_SPLITS} splits and needs at least {IS_SPLITS} images, got {outputs.count}."
    if reason is not None:
        return {"is_mean": None, "is_std": None, "is_unavailable_reason": reason}
    mean, std = inception_score_from_logits(outputs.logits(), splits=IS_SPLITS, seed=seed)
    return {"is_mean": mean, "is_std": std, "is_unavailable_reason": None}
