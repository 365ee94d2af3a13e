"""Score a saved image set against a reference set: ``hqdm score``.

Where ``hqdm evaluate`` samples a checkpoint and scores in one go, this scores images that already exist,
so one set of samples can be scored several ways (resize mode, number of images, reference split) and a
real split can stand in for the generated set (the FID floor of real images at that n). An image set is
named by a source string: a path to an ``.npz`` written by ``hqdm sample`` (key ``images``), or
``DATASET:SPLIT`` (e.g. ``fashion-mnist:test``) for real images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hqdm.config import ConfigError
from hqdm.data import load_dataset
from hqdm.data.registry import DATASET_NAMES
from hqdm.metrics import evaluate_images
from hqdm.metrics.images import check_uint8_images
from hqdm.metrics.resize import RESIZE_MODES, TORCH_BILINEAR

__all__ = ["ImageSet", "load_image_set", "score_image_sets"]


@dataclass(frozen=True)
class ImageSet:
    images: Tensor  # uint8 (N, C, H, W)
    source: str  # the source string it was loaded from
    subset_seed: int | None  # the seed that picked a random subset of a real split, else None


def _split_source(source: str) -> tuple[str, str] | None:
    """``(dataset, split)`` when ``source`` names a real split, else None (it is a file)."""
    name, sep, split = source.rpartition(":")
    if sep and name in DATASET_NAMES and not Path(source).exists():
        return name, split
    return None


def load_image_set(
    source: str, *, num_images: int | None, seed: int, data_dir: str | Path | None
) -> ImageSet:
    """The images a source string names. A file gives its first ``num_images`` images (all if None);
    a real split gives ``num_images`` of them picked with ``seed`` (the whole split if None)."""
    if num_images is not None and num_images < 2:
        raise ConfigError(f"{source}: need at least 2 images, got {num_images}")
    named_split = _split_source(source)
    if named_split is not None:
        dataset, split = named_split
        try:
            real = load_dataset(dataset, split, data_dir=data_dir, subset=num_images, subset_seed=seed)
        except ValueError as err:  # an unknown split, more images than the split holds
            raise ConfigError(f"{source}: {err}") from err
        return ImageSet(real.images, source, seed if num_images is not None else None)
    return ImageSet(_read_npz(Path(source), num_images), source, None)


def _read_npz(path: Path, num_images: int | None) -> Tensor:
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such file. Give an .npz written by `hqdm sample`, or DATASET:SPLIT for real "
            f"images (e.g. fashion-mnist:test; datasets: {', '.join(DATASET_NAMES)})."
        )
    try:
        with np.load(path) as archive:
            images = archive["images"]
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"{path}: not an .npz with an `images` array ({err})") from err
    if num_images is not None and num_images > images.shape[0]:
        raise ConfigError(f"{path}: holds {images.shape[0]} images, {num_images} requested")
    return check_uint8_images(torch.from_numpy(images[:num_images]), str(path))


def score_image_sets(
    generated: ImageSet,
    real: ImageSet,
    *,
    metrics: tuple[str, ...] = ("fid", "kid"),
    resize: str = TORCH_BILINEAR,
    feature_precision: str = "fp32",
    kid_subset_size: int = 100,
    seed: int = 0,
    batch_size: int = 100,
    device: torch.device | str = "cpu",
    progress: bool = False,
    feature_extractor: nn.Module | None = None,
) -> dict[str, Any]:
    """FID/KID (or SSIM) of ``generated`` against ``real``, with what was scored and how: a record for a
    JSON file. ``feature_extractor`` replaces the FID network (tests)."""
    if resize not in RESIZE_MODES:
        raise ConfigError(f"--resize: unknown mode {resize!r}; use one of {', '.join(RESIZE_MODES)}")
    if generated.images.shape[1:] != real.images.shape[1:]:
        raise ConfigError(
            f"image shapes differ: {generated.source} holds {tuple(generated.images.shape[1:])}, "
            f"{real.source} holds {tuple(real.images.shape[1:])}"
        )
    scores = evaluate_images(
        generated.images,
        real.images,
        metrics=metrics,
        resize=resize,
        feature_precision=feature_precision,
        kid_subset_size=kid_subset_size,
        seed=seed,
        batch_size=batch_size,
        device=device,
        progress=progress,
        feature_extractor=feature_extractor,
    )
    sets = {"generated": generated, "real": real}
    return {
        "metrics": scores,
        **{
            role: {"source": s.source, "num_images": int(s.images.shape[0]), "subset_seed": s.subset_seed}
            for role, s in sets.items()
        },
        "resize": resize,
        "fid_precision": feature_precision,
    }
