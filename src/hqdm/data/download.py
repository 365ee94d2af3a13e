"""Fetch MNIST-style IDX files into the user cache, verified and written atomically."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import zlib
from pathlib import Path
from urllib.request import urlopen

from tqdm import tqdm

from hqdm.data.errors import DatasetError
from hqdm.data.locate import user_cache_root
from hqdm.data.registry import (
    EMBEDDED_DATASETS,
    PATHMNIST,
    PATHMNIST_FILE,
    PATHMNIST_SOURCES,
    IdxDatasetSpec,
    idx_spec,
    valid_splits,
)

_CHUNK = 1 << 16
_TIMEOUT_S = 60


class DatasetDownloadError(DatasetError):
    """No mirror delivered a file with the expected content."""


def download_dataset(name: str, cache_dir: str | Path | None = None, *, progress: bool = True) -> Path:
    """Download all files of ``name`` into ``<cache_dir>/<name>/`` and return that folder.

    ``cache_dir`` defaults to the user cache that :func:`hqdm.data.load_dataset` searches. Files already
    present with the right content are kept; each new file is verified (SHA-256 of its decompressed
    content) in a temporary file and only then renamed into place.
    """
    spec = _downloadable_spec(name)
    target_dir = Path(cache_dir).expanduser() / name if cache_dir is not None else user_cache_root() / name
    target_dir.mkdir(parents=True, exist_ok=True)
    for stem in spec.stems():
        target = target_dir / f"{stem}.gz"
        if not _already_valid(target, spec.sha256[stem]):
            _download_verified(spec, stem, target, progress)
    return target_dir


def _downloadable_spec(name: str) -> IdxDatasetSpec:
    valid_splits(name)  # ValueError for unknown names
    if name == PATHMNIST:
        raise ValueError(
            f"{PATHMNIST} cannot be downloaded automatically; get {PATHMNIST_FILE} from "
            + " or ".join(PATHMNIST_SOURCES)
            + " and pass its path with --data-dir"
        )
    if name in EMBEDDED_DATASETS:
        raise ValueError(f"{name} ships inside the hqdm package; there is nothing to download")
    return idx_spec(name)


def _download_verified(spec: IdxDatasetSpec, stem: str, target: Path, progress: bool) -> None:
    problems = []
    for mirror in spec.mirrors:
        url = f"{mirror}{stem}.gz"
        try:
            _fetch_atomically(url, target, spec.sha256[stem], progress)
            return
        except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
            problems.append(f"  {url}: {exc}")
    raise DatasetDownloadError(
        f"could not download {spec.title} file {stem}.gz; every mirror failed:\n" + "\n".join(problems)
    )


def _fetch_atomically(url: str, target: Path, expected_sha256: str, progress: bool) -> None:
    """Download to a temporary file beside ``target``, verify, then rename; nothing partial remains."""
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out, urlopen(url, timeout=_TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=target.name,
                disable=not progress,
                file=sys.stderr,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
        actual = _gunzip_sha256(temp)
        if actual != expected_sha256:
            raise ValueError(f"SHA-256 of the decompressed content is {actual}, expected {expected_sha256}")
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _gunzip_sha256(path: Path) -> str:
    """SHA-256 of the decompressed content; bad gzip data raises ValueError with the reason."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"not valid gzip data ({exc})") from exc
    return digest.hexdigest()


def _already_valid(path: Path, expected_sha256: str) -> bool:
    try:
        return path.is_file() and _gunzip_sha256(path) == expected_sha256
    except ValueError:
        return False  # a broken earlier copy is simply replaced
