"""PNG grids (plain and labelled side by side) and sample archives, each written atomically
(:mod:`hqdm.files`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hqdm.files import atomic_path

__all__ = [
    "make_grid",
    "save_grid_png",
    "save_labelled_grids_png",
    "save_samples_npz",
]


def _write_atomically(target: Path, suffix: str, write: Callable[[Path], None]) -> None:
    with atomic_path(target, suffix) as tmp:
        write(tmp)


def make_grid(images: np.ndarray, *, ncols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile uint8 images (N, C, H, W) into one (H', W') or (H', W', C) array with ``pad`` black pixels."""
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape (N, C, H, W), got {images.dtype} {images.shape}")
    n, c, h, w = images.shape
    ncols = ncols or max(1, math.ceil(math.sqrt(n)))
    nrows = max(1, math.ceil(n / ncols))
    grid = np.zeros((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), dtype=np.uint8)
    for i, image in enumerate(images):
        top, left = pad + (i // ncols) * (h + pad), pad + (i % ncols) * (w + pad)
        grid[top : top + h, left : left + w] = image.transpose(1, 2, 0)
    return grid[..., 0] if c == 1 else grid


def save_grid_png(images: np.ndarray, path: Path, *, ncols: int | None = None, scale: int = 2) -> np.ndarray:
    """Write ``images`` (uint8, N,C,H,W) as one PNG grid, upscaled ``scale``x; returns the grid."""
    grid = make_grid(images, ncols=ncols)
    picture = Image.fromarray(grid)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    _write_atomically(path, ".png", lambda tmp: picture.save(tmp, format="PNG"))
    return grid


def save_labelled_grids_png(
    panels: list[tuple[str, np.ndarray]], path: Path, *, ncols: int | None = None, scale: int = 3
) -> Image.Image:
    """Write one PNG with a grid per ``(label, uint8 images)`` panel, side by side, each under its label."""
    grids = [Image.fromarray(make_grid(images, ncols=ncols)).convert("RGB") for _, images in panels]
    grids = [g.resize((g.width * scale, g.height * scale), Image.Resampling.NEAREST) for g in grids]
    gap, label_height = 12, 22
    width = sum(g.width for g in grids) + gap * (len(grids) + 1)
    height = max(g.height for g in grids) + label_height + gap
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    left = gap
    for (label, _), grid in zip(panels, grids, strict=True):
        draw.text((left, 5), label, fill="black")  # PIL's built-in font: no font file to ship
        picture.paste(grid, (left, label_height))
        left += grid.width + gap
    _write_atomically(path, ".png", lambda tmp: picture.save(tmp, format="PNG"))
    return picture


def save_samples_npz(images: np.ndarray, path: Path) -> None:
    """Write uint8 samples (N, C, H, W) under the key ``images``."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:  # a file object stops numpy from appending ".npz"
            np.savez_compressed(handle, images=images)

    _write_atomically(path, ".npz", write)
