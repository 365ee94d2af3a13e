"""Build src/hqdm/assets/embedded_subset.npz: a class-balanced training subset of MNIST and Fashion-MNIST.

Usage: python scripts/make_embedded_subset.py --data-dir DIR [--per-class 200] [--seed 0] [--output PATH]

DIR holds ``mnist/`` and ``fashion-mnist/`` with the standard IDX files. Only the official releases are
accepted (checked by SHA-256). The npz stores, per dataset, the images, labels and the indices into the
60,000-image training split that were chosen, plus the seed and images per class.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hqdm.data import check_dataset, load_dataset
from hqdm.data.embedded import EMBEDDED_FILE, array_key

SOURCES = ("mnist", "fashion-mnist")
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "src" / "hqdm" / "assets" / EMBEDDED_FILE


def balanced_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """``per_class`` random indices of each label, sorted; depends only on ``labels`` and ``seed``."""
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def build(data_dir: Path, per_class: int, seed: int) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {"seed": np.array(seed), "per_class": np.array(per_class)}
    for name in SOURCES:
        train = check_dataset(name, data_dir).splits[0]
        if not (train.ok and train.standard):
            raise SystemExit(
                f"{name}: training split missing, broken or not the official release:\n{train.format()}"
            )
        full = load_dataset(name, "train", data_dir=data_dir)
        labels = full.labels.numpy()
        indices = balanced_indices(labels, per_class, seed)
        arrays[array_key(name, "images")] = full.images[indices, 0].numpy()
        arrays[array_key(name, "labels")] = labels[indices].astype(np.uint8)
        arrays[array_key(name, "source_indices")] = indices.astype(np.int32)
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="folder holding mnist/ and fashion-mnist/"
    )
    parser.add_argument("--per-class", type=int, default=200, help="images per class and dataset")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-class random choice")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    arrays = build(args.data_dir, args.per_class, args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
