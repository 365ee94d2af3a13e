"""The image input contract shared by every metric: uint8 tensors of shape (N, 1 or 3, H, W)."""

from __future__ import annotations

import torch
from torch import Tensor

from hqdm.metrics.errors import ImageInputError


def check_uint8_images(images: object, name: str = "images") -> Tensor:
    """Return ``images`` if it is a uint8 (N, 1 or 3, H, W) tensor, else raise ImageInputError saying why."""
    if not isinstance(images, Tensor):
        raise ImageInputError(f"{name} must be a torch.Tensor, got {type(images).__name__}.")
    if images.dtype != torch.uint8:
        raise ImageInputError(
            f"{name} must be uint8 in [0, 255], got {images.dtype}; convert with "
            "`(x.clamp(0, 1) * 255).round().to(torch.uint8)` for float images in [0, 1]."
        )
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ImageInputError(f"{name} must have shape (N, 1 or 3, H, W), got {tuple(images.shape)}.")
    return images
