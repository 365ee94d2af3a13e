"""Real-image features computed once per image set and network configuration, cached on disk as npz.

Features (not just mean/covariance) are stored so both FID and KID can be computed from one cache entry.
The key hashes the image bytes, shape and dtype together with the extractor's ``cache_key`` (network hash
and resize mode), so a different split, size, dataset or preprocessing never hits a stale entry.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from hqdm.metrics.batches import map_batches
from hqdm.metrics.images import check_uint8_images

CACHE_DIR_ENV = "HQDM_FID_STATS_DIR"
CACHE_FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$HQDM_FID_STATS_DIR`` if set, else ``~/.cache/hqdm/fid-stats``."""
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "hqdm" / "fid-stats"


def extractor_cache_key(extractor: nn.Module) -> str:
    """The extractor's ``cache_key`` string; required so entries of different networks never collide."""
    key = getattr(extractor, "cache_key", None)
    if not isinstance(key, str) or not key:
        raise ValueError(
            f"{type(extractor).__name__} has no `cache_key` string attribute; give feature extractors one "
            "that identifies the network and its preprocessing, so cached real features can be keyed by it."
        )
    return key


def real_images_key(images: Tensor, extractor_key: str) -> str:
    """SHA-256 over the format version, extractor key, image shape/dtype and raw image bytes."""
    check_uint8_images(images, "real")
    digest = hashlib.sha256()
    digest.update(f"v{CACHE_FORMAT_VERSION}|{extractor_key}|{tuple(images.shape)}|{images.dtype}|".encode())
    digest.update(images.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _load_entry(path: Path, num_images: int, num_features: int) -> Tensor | None:
    """Features from a cache file, or None when it is missing, unreadable or of the wrong shape."""
    try:
        with np.load(path) as entry:
            features = entry["features"]
    except (OSError, KeyError, ValueError):
        return None
    if features.shape != (num_images, num_features):
        return None
    return torch.from_numpy(features)


def _save_entry(path: Path, features: Tensor, extractor_key: str) -> None:
    # Written to a temporary file and renamed so a crash or a concurrent run never leaves a half file.
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as handle:
        np.savez(handle, features=features.numpy(), extractor_key=np.array(extractor_key))
    os.replace(handle.name, path)


def real_features(
    real: Tensor,
    extractor: nn.Module,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 50,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> Tensor:
    """(M, F) float32 CPU features of the real images, read from the cache or extracted and then cached.

    ``extractor`` needs ``num_features`` and ``cache_key`` attributes (FIDInceptionFeatures has both).
    ``cache_dir`` defaults to default_cache_dir().
    """
    key = real_images_key(real, extractor_cache_key(extractor))
    path = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = path / f"real-{key[:40]}.npz"
    cached = _load_entry(path, real.shape[0], int(extractor.num_features))
    if cached is not None:
        return cached
    features = map_batches(
        extractor, real, batch_size=batch_size, device=device, progress=progress, name="real"
    ).float()
    _save_entry(path, features, extractor_cache_key(extractor))
    return features
