"""Portable trained models: ``config.json`` (how to build the model) plus ``model.safetensors`` (weights).

``save_pretrained(model, folder, diffusion=...)`` writes a model built by :func:`hqdm.models.build_model`;
``load_pretrained(folder)`` builds it again from the config alone and loads the weights. Nothing is
unpickled: the config is JSON and the weights are safetensors. A ``README.md`` model card may sit beside
them. ``load_pretrained`` also takes the name of a model shipped inside the package (``shipped_models()``).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from hqdm import __version__
from hqdm.files import apply_umask
from hqdm.models.registry import ModelSpec, build_model
from hqdm.registry import UnknownNameError

__all__ = [
    "FORMAT",
    "PretrainedError",
    "load_pretrained",
    "read_pretrained_config",
    "save_pretrained",
    "shipped_models",
]

FORMAT = 1  # raised when the layout of the folder changes; older readers refuse newer folders
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "pretrained"


class PretrainedError(ValueError):
    """A pretrained folder or name cannot be used; the message says why and what to do."""


def shipped_models() -> list[str]:
    """Names of the pretrained models packaged with hqdm."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / CONFIG).is_file())


def save_pretrained(
    model: nn.Module,
    folder: str | Path,
    *,
    diffusion: dict[str, Any],
    card: str | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (and ``README.md`` from ``card``) into ``folder``.

    ``diffusion`` is the ``diffusion`` config section the model was trained with (schedule, T, noise
    source), which sampling needs; it is required because a folder without it would be sampled with a
    guess. Keys it lacks are read back as hqdm's defaults (:class:`hqdm.config.DiffusionConfig`)."""
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise PretrainedError("the model has no build spec: build it with hqdm.models.build_model")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, folder / WEIGHTS)
    apply_umask(folder / WEIGHTS)  # safetensors writes owner-only files
    config = {
        "format": FORMAT,
        "hqdm_version": __version__,
        **asdict(spec),
        "diffusion": dict(diffusion),
    }
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if card is not None:
        (folder / "README.md").write_text(card, encoding="utf-8")
    return folder


def _resolve(source: str | Path) -> Path:
    folder = Path(source)
    if (folder / CONFIG).is_file():
        return folder
    if isinstance(source, str) and source in shipped_models():
        return SHIPPED_DIR / source
    shipped = ", ".join(shipped_models()) or "none yet"
    raise PretrainedError(
        f"{str(source)!r} is neither a folder with {CONFIG} nor a shipped model's name (shipped: {shipped})"
    )


def read_pretrained_config(source: str | Path) -> tuple[Path, dict[str, Any]]:
    """The folder of ``source`` and its ``config.json``."""
    folder = _resolve(source)
    try:
        return folder, json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise PretrainedError(f"{folder / CONFIG} is not valid JSON ({err})") from err


def load_pretrained(source: str | Path, *, device: torch.device | str = "cpu") -> nn.Module:
    """The model saved in ``source`` (a folder, or a shipped model's name), in eval mode on ``device``."""
    folder, config = read_pretrained_config(source)
    if not isinstance(config.get("format"), int) or config["format"] > FORMAT:
        raise PretrainedError(
            f"{folder} has format {config.get('format')!r}; this hqdm reads format {FORMAT} and older: "
            "upgrade hqdm"
        )
    try:
        spec = ModelSpec(config["name"], config["semantics"], config["in_channels"], config["image_size"])
        model = build_model(
            spec.name, in_channels=spec.in_channels, image_size=spec.image_size, semantics=spec.semantics
        )
    except (KeyError, UnknownNameError, ValueError) as err:  # KeyError: a key missing from the config
        raise PretrainedError(
            f"{folder / CONFIG} does not describe a model this hqdm can build: {err}"
        ) from err
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise PretrainedError(f"{weights} is missing: the folder holds a config but no weights")
    try:
        model.load_state_dict(load_file(weights), strict=True)
    except (SafetensorError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0]
        raise PretrainedError(f"{weights} does not fit the model {spec.name!r}: {first}") from err
    return model.to(device).eval()
