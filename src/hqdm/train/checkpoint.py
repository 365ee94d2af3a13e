"""Checkpoints: one directory per saved step, written atomically, the last N kept.

Layout of ``<run>/checkpoints/step_0000123/``:

* ``model.safetensors`` / ``ema.safetensors``: online and EMA weights;
* ``optimizer.pt``: the Adam state dict;
* ``rng.pt``: torch's global RNG, the run's generators, python's and numpy's RNG states;
* ``state.json``: where the run stands (step, epoch, batch within the epoch, phase, ...);
* ``config.json``: the resolved config of the run;
* ``manifest.json``: the SHA-256 of each file above but ``state.json``, checked by
  :func:`verify_checkpoint` (checkpoints written before it existed have none and are not checked).

The directory is assembled under a temporary name and renamed into place, so a reader sees either a
complete checkpoint or none. Every file is serialised in memory and written with plain file I/O, so a
full disk or a read-only folder surfaces as a :class:`StorageError` naming the cause and the place
(torch's own writer reports a full disk as an opaque ``inline_container`` RuntimeError). Checkpoints
beyond ``keep_last - 1`` are pruned before a new one is written, which frees their space for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from hqdm.files import apply_umask, storage_cause

__all__ = [
    "CHECKPOINT_DIR",
    "CheckpointError",
    "StorageError",
    "TrainState",
    "find_checkpoints",
    "latest_checkpoint",
    "load_rng",
    "load_weights",
    "read_state",
    "remove_temporaries",
    "resolve_checkpoint",
    "save_checkpoint",
    "verify_checkpoint",
]

CHECKPOINT_DIR = "checkpoints"
MANIFEST = "manifest.json"
MANIFEST_FILES = ("model.safetensors", "ema.safetensors", "optimizer.pt", "rng.pt", "config.json")
_NAME_RE = re.compile(r"^step_(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or does not fit the model it is loaded into."""


class StorageError(OSError):
    """A checkpoint could not be written: full disk, read-only folder, no permission. Nothing was left
    half-written and the checkpoints written before are intact."""


def _storage_error(err: OSError, target: Path, run_dir: Path) -> StorageError:
    cause = storage_cause(err) or err.strerror or str(err)
    kept = find_checkpoints(run_dir)
    then = (
        f"the newest intact checkpoint is {kept[-1].name}: free space (or fix the folder), then continue "
        "with --resume"
        if kept
        else "no checkpoint was written yet: free space (or fix the folder), then start the run again"
    )
    free = shutil.disk_usage(target.parent).free if target.parent.exists() else 0
    error = StorageError(
        f"cannot write checkpoint {target} ({cause}; {free / 2**20:.1f} MB free there). Nothing was left "
        f"half-written; {then}"
    )
    error.errno = err.errno
    return error


def _write_bytes(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())  # a full disk can also surface only when the data reaches it


def _torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@dataclass
class TrainState:
    """Position of a run, enough to continue it exactly where it stopped."""

    step: int = 0  # optimiser steps done so far (over all phases)
    epoch: int = 0  # 0-based epoch in progress (or the next one when batch == 0)
    batch: int = 0  # batches of ``epoch`` already consumed
    phase: int = 0  # 0: main (or classical) phase, 1: transfer fine-tune
    phase_start_step: int = 0  # global step at which the current phase started (EMA warm-up origin)
    model_name: str = ""
    elapsed: float = 0.0  # training wall time in seconds before this checkpoint
    log_loss_sum: float = 0.0  # partial sums of the CSV interval, so resumed logs match
    log_loss_count: int = 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checkpoint(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be trusted (a missing or changed file), or None when it is intact."""
    try:
        json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        return f"state.json is unreadable ({err})"
    manifest_path = checkpoint / MANIFEST
    if not manifest_path.is_file():
        return None  # written before manifests existed: nothing to check against
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        return f"{MANIFEST} is unreadable ({err})"
    for name, expected in manifest.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        if _sha256(path) != expected:
            return f"{name} does not match its checksum (damaged or changed after it was written)"
    return None


def _tensors_for_file(module: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors needs contiguous, unshared CPU tensors
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def _rng_payload(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {name: gen.get_state() for name, gen in generators.items()},
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
    }


def _write_checkpoint_files(
    directory: Path,
    state: TrainState,
    model: nn.Module,
    ema: nn.Module,
    optimizer: torch.optim.Optimizer,
    generators: dict[str, torch.Generator],
    config: dict[str, Any],
) -> None:
    _write_bytes(directory / "model.safetensors", safetensors_bytes(_tensors_for_file(model)))
    _write_bytes(directory / "ema.safetensors", safetensors_bytes(_tensors_for_file(ema)))
    _write_bytes(directory / "optimizer.pt", _torch_bytes(optimizer.state_dict()))
    _write_bytes(directory / "rng.pt", _torch_bytes(_rng_payload(generators)))
    _write_bytes(directory / "config.json", (json.dumps(config, indent=2) + "\n").encode())
    manifest = {name: _sha256(directory / name) for name in MANIFEST_FILES}
    _write_bytes(directory / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    # written last: a directory with state.json is complete even if the rename below were not atomic
    _write_bytes(directory / "state.json", (json.dumps(dataclasses.asdict(state), indent=2) + "\n").encode())


def save_checkpoint(
    run_dir: Path,
    state: TrainState,
    *,
    model: nn.Module,
    ema: nn.Module,
    optimizer: torch.optim.Optimizer,
    generators: dict[str, torch.Generator],
    config: dict[str, Any],
    keep_last: int,
) -> Path:
    """Write ``<run_dir>/checkpoints/step_<step>`` atomically and keep only the newest ``keep_last``.

    With ``keep_last >= 2`` the checkpoints that the new one would push out are deleted first, so their
    space is free for it while ``keep_last - 1`` intact ones remain. A write that fails for lack of space
    or permission raises :class:`StorageError` after removing its partial folder."""
    root = run_dir / CHECKPOINT_DIR
    target = root / f"step_{state.step:07d}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        older = [c for c in find_checkpoints(run_dir) if c != target]
        for old in older[: max(len(older) - (keep_last - 1), 0)] if keep_last >= 2 else []:
            shutil.rmtree(old)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=root))
    except OSError as err:
        raise _storage_error(err, target, run_dir) from err
    try:
        _write_checkpoint_files(tmp, state, model, ema, optimizer, generators, config)
        for path in (tmp, *tmp.iterdir()):
            apply_umask(path)
        if target.exists():  # same step saved again (e.g. after a resume): swap, then drop the old one
            stale = root / f".{target.name}.stale"
            shutil.rmtree(stale, ignore_errors=True)
            os.replace(target, stale)
            os.replace(tmp, target)
            shutil.rmtree(stale)
        else:
            os.replace(tmp, target)
    except OSError as err:
        raise _storage_error(err, target, run_dir) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in find_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old)
    return target


def remove_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary folders that interrupted checkpoint writes left behind; return them."""
    root = run_dir / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    leftovers = [
        p for p in root.iterdir() if p.name.startswith(".step_") and p.name.endswith((".tmp", ".stale"))
    ]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return leftovers


def find_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = run_dir / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := _NAME_RE.match(p.name)) and (p / "state.json").is_file()
    ]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = find_checkpoints(run_dir)
    return found[-1] if found else None


def resolve_checkpoint(path: Path) -> Path:
    """Accept a checkpoint directory or a run directory (-> its newest checkpoint)."""
    if (path / "state.json").is_file():
        return path
    if path.is_dir() and (latest := latest_checkpoint(path)) is not None:
        return latest
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    raise CheckpointError(
        f"{str(path)!r} is neither a checkpoint directory nor a run directory with checkpoints"
    )


def read_state(checkpoint: Path) -> tuple[TrainState, dict[str, Any]]:
    """The run position and the resolved config (as a dict) stored in a checkpoint."""
    try:
        state = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
        config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint {str(checkpoint)!r} is incomplete or unreadable: {err}") from err
    return TrainState(**state), config


def load_weights(module: nn.Module, file: Path) -> None:
    """Load a safetensors file into ``module`` strictly, on the module's device; NaN or infinite
    weights are refused."""
    try:
        tensors = load_file(file)
        module.load_state_dict(tensors, strict=True)
    except (OSError, RuntimeError, SafetensorError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"cannot load weights {str(file)!r} into {type(module).__name__}: {first}"
        ) from err
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise CheckpointError(f"weights {str(file)!r} hold NaN or infinite values (in {', '.join(bad[:3])})")


def load_rng(checkpoint: Path, generators: dict[str, torch.Generator]) -> None:
    """Restore every RNG state saved with the checkpoint (the generators are updated in place)."""
    payload = torch.load(checkpoint / "rng.pt", weights_only=True)
    torch.set_rng_state(payload["torch"])
    if payload["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda"])
    for name, gen in generators.items():
        gen.set_state(payload["generators"][name])
    version, internal, gauss = payload["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = payload["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
