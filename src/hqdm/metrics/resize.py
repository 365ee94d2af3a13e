"""The two ways images are brought to the Inception input size (both on float, no re-quantisation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

TORCH_BILINEAR = "torch-bilinear"
TF1_BILINEAR = "tf1-bilinear"
RESIZE_MODES = (TORCH_BILINEAR, TF1_BILINEAR)


def _tf1_axis_weights(size_in: int, size_out: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Lower/upper source indices and the upper weight for one axis of a TF1 bilinear resize.

    TF1 ``resize_bilinear(align_corners=False)`` samples output pixel ``d`` at ``src = d * in / out``:
    no half-pixel centres, so the grid is anchored at the top-left pixel and the last rows repeat the edge.
    """
    src = torch.arange(size_out, device=device, dtype=torch.float64) * (size_in / size_out)
    lower = src.floor().long().clamp(max=size_in - 1)
    upper = (lower + 1).clamp(max=size_in - 1)
    return lower, upper, src - lower


def resize_tf1_bilinear(images: Tensor, size: tuple[int, int]) -> Tensor:
    """TF1-style bilinear resize of float NCHW ``images`` to ``size`` (separable: rows, then columns)."""
    height, width = size
    rows_lo, rows_hi, row_w = _tf1_axis_weights(images.shape[-2], height, images.device)
    cols_lo, cols_hi, col_w = _tf1_axis_weights(images.shape[-1], width, images.device)
    row_w = row_w.to(images.dtype).view(-1, 1)
    col_w = col_w.to(images.dtype)
    top, bottom = images.index_select(-2, rows_lo), images.index_select(-2, rows_hi)
    rows = top + (bottom - top) * row_w
    left, right = rows.index_select(-1, cols_lo), rows.index_select(-1, cols_hi)
    return left + (right - left) * col_w


def resize_torch_bilinear(images: Tensor, size: tuple[int, int]) -> Tensor:
    """torch bilinear with half-pixel centres and no antialiasing (the preprocessing of the anchor values)."""
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=False)


def resize_images(images: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """Resize float NCHW ``images`` with one of RESIZE_MODES; a no-op when already at ``size``."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"Unknown resize mode {mode!r}; use one of {', '.join(RESIZE_MODES)}.")
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    if mode == TORCH_BILINEAR:
        return resize_torch_bilinear(images, size)
    return resize_tf1_bilinear(images, size)
