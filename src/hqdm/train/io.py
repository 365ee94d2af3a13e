"""Small file helpers: atomic writes, PNG grids (plain and labelled side by side) and sample archives.

Every file a run produces goes through a temporary name and ``os.replace`` so that an interrupted
process never leaves a half-written file where a reader expects a complete one.
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hqdm.permissions import apply_umask

__all__ = [
    "atomic_path",
    "atomic_write_text",
    "make_grid",
    "save_grid_png",
    "save_labelled_grids_png",
    "save_samples_npz",
    "storage_cause",
]

_STORAGE_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the folder is on a read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def storage_cause(err: OSError) -> str | None:
    """What a failed write means for the user ("the disk is full", ...), None for other OS errors."""
    return _STORAGE_CAUSES.get(err.errno or 0)


@contextmanager
def atomic_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target`` in one step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        apply_umask(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


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
