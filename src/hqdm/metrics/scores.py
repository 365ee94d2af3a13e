"""FID, KID and IS computed by torchmetrics from features/logits that were extracted beforehand.

Extracting once and feeding torchmetrics through an identity ``feature=`` module runs the Inception network
once per image for both FID and KID, and lets cached real features be reused.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from hqdm.metrics.batches import PrecomputedFeatures

KID_SUBSET_SIZE = 100
KID_SUBSETS = 100
IS_SPLITS = 10


@contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """torchmetrics' KID and IS draw from the global torch RNG: seed it, then restore the caller's state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextmanager
def _quiet_feature_buffers() -> Iterator[None]:
    # KID/IS warn that they keep every feature in memory; holding them is the point here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
        yield


def _check_features(real: Tensor, fake: Tensor) -> None:
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"Real and generated features must be (N, F) with the same F, got {tuple(real.shape)} "
            f"and {tuple(fake.shape)}."
        )


def fid_from_features(real: Tensor, fake: Tensor) -> float:
    """Fréchet distance of the Gaussians fitted to two (N, F) feature sets (torchmetrics, float64 states)."""
    _check_features(real, fake)
    if real.shape[0] < 2 or fake.shape[0] < 2:
        raise ValueError("FID needs at least 2 real and 2 generated images.")
    metric = FrechetInceptionDistance(feature=PrecomputedFeatures(real.shape[1])).to(real.device)
    metric.update(real, real=True)
    metric.update(fake.to(real.device), real=False)
    return float(metric.compute())


def kid_from_features(
    real: Tensor,
    fake: Tensor,
    *,
    subset_size: int = KID_SUBSET_SIZE,
    subsets: int = KID_SUBSETS,
    seed: int = 0,
) -> tuple[float, float]:
    """KID mean and std over ``subsets`` random subsets of ``subset_size`` (cubic polynomial kernel).

    Raises ValueError when a set has fewer than ``subset_size`` images (callers decide whether to clamp).
    """
    _check_features(real, fake)
    smallest = min(real.shape[0], fake.shape[0])
    if not 2 <= subset_size <= smallest:
        raise ValueError(
            f"KID subset size {subset_size} must be between 2 and the smaller set size ({smallest})."
        )
    with _quiet_feature_buffers():
        metric = KernelInceptionDistance(
            feature=PrecomputedFeatures(real.shape[1]), subset_size=subset_size, subsets=subsets
        ).to(real.device)
    metric.update(real, real=True)
    metric.update(fake.to(real.device), real=False)
    with seeded_global_rng(seed):
        mean, std = metric.compute()
    return float(mean), float(std)


def inception_score_from_logits(
    logits: Tensor, *, splits: int = IS_SPLITS, seed: int = 0
) -> tuple[float, float]:
    """Inception Score mean and std over ``splits`` groups, from (N, K) class logits (torchmetrics)."""
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"IS needs (N, K >= 2) logits, got {tuple(logits.shape)}.")
    if logits.shape[0] < splits:
        raise ValueError(f"IS with {splits} splits needs at least {splits} images, got {logits.shape[0]}.")
    with _quiet_feature_buffers():
        metric = InceptionScore(feature=PrecomputedFeatures(logits.shape[1]), splits=splits).to(logits.device)
    metric.update(logits)
    with seeded_global_rng(seed):
        mean, std = metric.compute()
    return float(mean), float(std)
