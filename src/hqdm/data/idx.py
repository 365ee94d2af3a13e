"""Strict reader for IDX files (raw or gzipped): malformed input raises, never yields wrong data."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from hqdm.data.errors import CorruptDatasetError

_UBYTE_TYPE = 0x08  # IDX type code for unsigned bytes, the only one MNIST-style files use


def read_file_bytes(path: Path) -> bytes:
    """File content, decompressed when the name ends in ``.gz``."""
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; truncation is EOFError
        raise CorruptDatasetError(f"{path}: not a valid gzip file ({exc})") from exc


def parse_idx(data: bytes, expected_ndim: int, source: Path | str) -> np.ndarray:
    """Parse an unsigned-byte IDX blob and check the header against the payload."""
    if len(data) < 4:
        raise CorruptDatasetError(f"{source}: {len(data)} bytes, too short for an IDX header")
    if data[0] != 0 or data[1] != 0 or data[2] != _UBYTE_TYPE:
        magic = int.from_bytes(data[:4], "big")
        raise CorruptDatasetError(
            f"{source}: wrong magic number 0x{magic:08x}, expected 0x{0x0800 + expected_ndim:08x} "
            f"(unsigned-byte IDX with {expected_ndim} dimension(s))"
        )
    ndim = data[3]
    if ndim != expected_ndim:
        raise CorruptDatasetError(
            f"{source}: IDX header declares {ndim} dimension(s), expected {expected_ndim}"
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise CorruptDatasetError(f"{source}: truncated header ({len(data)} of {header_len} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape)  # exact for any header sizes (np.prod could overflow)
    payload = len(data) - header_len
    if payload < expected:
        raise CorruptDatasetError(
            f"{source}: data shorter than the header says: {payload} bytes after the header, "
            f"shape {shape} needs {expected} (file truncated?)"
        )
    if payload > expected:
        raise CorruptDatasetError(
            f"{source}: {payload - expected} unexpected bytes after the {expected} that shape {shape} needs"
        )
    # Copy so the array owns writable memory (torch.from_numpy warns on read-only buffers).
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape).copy()
