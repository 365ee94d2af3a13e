"""Where dataset files are looked for, in order, and the message when they are nowhere."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hqdm.data.errors import DatasetNotFoundError
from hqdm.data.registry import EMBEDDED_PREFIX, IdxDatasetSpec

DATA_DIR_ENV = "HQDM_DATA_DIR"
# Module-level so tests (and unusual systems) can redirect them.
DEBIAN_DATASETS_ROOT = Path("/usr/share/datasets")
CACHE_ENV = "XDG_CACHE_HOME"


@dataclass(frozen=True)
class SearchPlace:
    """One directory searched for a dataset, with why it was searched."""

    directory: Path
    origin: str

    def describe(self) -> str:
        return f"{self.directory} ({self.origin})"


def user_cache_root() -> Path:
    """``$XDG_CACHE_HOME/hqdm/datasets`` or ``~/.cache/hqdm/datasets``; ``download_dataset`` fills it."""
    base = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache")
    return Path(base) / "hqdm" / "datasets"


def search_places(name: str, data_dir: str | Path | None, *, debian: bool = True) -> list[SearchPlace]:
    """Directories to try, in priority order; each user-given root may hold the files or ``<name>/``."""
    places: list[SearchPlace] = []
    for root, origin in ((data_dir, "data_dir / --data-dir"), (os.environ.get(DATA_DIR_ENV), DATA_DIR_ENV)):
        if root:
            root_path = Path(root).expanduser()
            # The named subfolder first: a folder holding one dataset's files directly is ambiguous.
            places.append(SearchPlace(root_path / name, origin))
            places.append(SearchPlace(root_path, origin))
    if debian:
        places.append(SearchPlace(DEBIAN_DATASETS_ROOT / name, "Debian package path"))
    places.append(SearchPlace(user_cache_root() / name, "user cache"))
    return places


def find_idx_file(directory: Path, stem: str) -> Path | None:
    """The raw file if present (no decompression needed), else the ``.gz``."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_idx_split(
    spec: IdxDatasetSpec, split: str, data_dir: str | Path | None
) -> tuple[SearchPlace, list[Path]]:
    """First place holding every file of ``split``; raises DatasetNotFoundError listing all places."""
    stems = spec.files[split]
    places = search_places(spec.name, data_dir, debian=True)
    findings: list[tuple[SearchPlace, list[str]]] = []
    for place in places:
        found = [find_idx_file(place.directory, stem) for stem in stems]
        paths = [p for p in found if p is not None]
        if len(paths) == len(stems):
            return place, paths
        findings.append((place, [stem for stem, p in zip(stems, found, strict=True) if p is None]))
    raise DatasetNotFoundError(_idx_not_found_message(spec, split, data_dir, findings))


def _idx_not_found_message(
    spec: IdxDatasetSpec,
    split: str,
    data_dir: str | Path | None,
    findings: list[tuple[SearchPlace, list[str]]],
) -> str:
    stems = spec.files[split]
    lines = [
        f"{spec.title} ({spec.name!r}) {split!r} split not found.",
        "Missing files (raw IDX or gzipped .gz): " + ", ".join(f"{s}[.gz]" for s in stems),
        "Places searched, in order:",
    ]
    for i, (place, missing) in enumerate(findings, start=1):
        status = (
            "directory does not exist" if not place.directory.is_dir() else "missing " + ", ".join(missing)
        )
        lines.append(f"  {i}. {place.describe()}: {status}")
    if data_dir is None:
        lines.append("  (no data_dir / --data-dir given)")
    if not os.environ.get(DATA_DIR_ENV):
        lines.append(f"  (environment variable {DATA_DIR_ENV} not set)")
    lines += [
        "How to provide them:",
        "  - pass --data-dir DIR (Python: data_dir=DIR), DIR holding the files "
        f"or a parent folder with {spec.name}/",
        f"  - or set the environment variable {DATA_DIR_ENV}=DIR (same two layouts)",
    ]
    if spec.debian_package:
        lines.append(
            f"  - or install the Debian package: sudo apt-get install {spec.debian_package} "
            f"(files land in {DEBIAN_DATASETS_ROOT / spec.name})"
        )
    lines += [
        f"  - or download them into the user cache: hqdm data download {spec.name}",
        f"  - or, with no set-up, use the shipped 2,000-image training subset: {EMBEDDED_PREFIX}{spec.name}",
    ]
    return "\n".join(lines)
