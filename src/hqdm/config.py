"""Typed run configuration: dataclasses loaded from YAML, ``--set key.sub=value`` overrides, validation.

A config file is a YAML mapping whose sections mirror the dataclasses below; every field has a default,
so a file only states what differs. Validation names the offending key (``training.epochs: ...``) so a
user can fix a file without reading code. The resolved config is saved as JSON with every run.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from hqdm.data import DATASET_NAMES
from hqdm.diffusion import (
    NoiseSchedule,
    available_schedules,
    make_noise_source,
    make_sampler,
    make_schedule,
    sampler_options,
)
from hqdm.models import SEMANTICS, list_models
from hqdm.registry import UnknownNameError

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "DiffusionConfig",
    "EMAConfig",
    "ModelConfig",
    "OptimConfig",
    "SamplingConfig",
    "TrainingConfig",
    "TransferConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "parse_override",
]

NoiseName = Literal["gaussian", "quantum"]  # hqdm.diffusion.NOISE_SOURCES
PrecisionName = Literal["auto", "fp32", "bf16"]  # hqdm.precision.PRECISIONS


class ConfigError(ValueError):
    """A config file or override is malformed; the message starts with the offending key."""


@dataclass
class ModelConfig:
    name: str = "unet"
    semantics: str = "paper"
    in_channels: int = 1


@dataclass
class DataConfig:
    dataset: str = "mnist"
    data_dir: str | None = None
    subset: int | None = None
    classes: list[int] | None = None
    subset_seed: int = 0


@dataclass
class DiffusionConfig:
    schedule: str = "cosine"
    num_timesteps: int = 1000
    schedule_options: dict[str, Any] = field(default_factory=dict)
    p2_gamma: float = 1.0
    p2_k: float = 1.0
    noise: NoiseName = "gaussian"
    noise_options: dict[str, Any] = field(default_factory=dict)  # e.g. shots for "quantum"


@dataclass
class OptimConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8


@dataclass
class TrainingConfig:
    batch_size: int = 128
    epochs: int = 20
    seed: int = 42
    grid_epochs: list[int] = field(default_factory=lambda: [1, 10, 20])
    checkpoint_every: int = 1000  # in optimiser steps; a checkpoint is also written at every epoch end
    keep_last: int = 3
    device: str = "auto"  # "auto" picks CUDA when available
    # classical layers in float32, or bfloat16 autocast ("auto": bf16 where the device has it natively)
    precision: PrecisionName = "auto"
    log_every: int = 10  # steps between CSV/TensorBoard rows


@dataclass
class EMAConfig:
    """The reference's EMA: copy for the first steps, then a warm-up decay capped at ``max_decay``."""

    warmup_steps: int = 100
    update_every: int = 10
    power: float = 2 / 3
    max_decay: float = 0.995


@dataclass
class SamplingConfig:
    """How the sample grids written during training are drawn (from the EMA weights)."""

    sampler: str = "ddpm"  # a name in hqdm.diffusion.available_samplers()
    steps: int = 1000  # for samplers that take steps (DDIM); DDPM always runs every timestep
    eta: float = 0.0
    num_images: int = 64


@dataclass
class TransferConfig:
    """Classical-to-hybrid transfer: ``classical_epochs`` of ``model.name``, then ``finetune_epochs``
    of ``target_model`` initialised from it (all weights but the vertex)."""

    enabled: bool = False
    classical_epochs: int = 19
    finetune_epochs: int = 1
    target_model: str | None = None
    exclude_prefixes: list[str] = field(default_factory=lambda: ["mid."])


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    output_dir: str = "runs/default"


# --- YAML ----------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in "-+0123456789.":
    _Loader.yaml_implicit_resolvers[_first] = [
        (tag, rx)
        for tag, rx in _Loader.yaml_implicit_resolvers.get(_first, [])
        if tag != "tag:yaml.org,2002:float"
    ]
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def _yaml_load(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader derives from SafeLoader
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML ({err})") from err


# --- typed conversion ----------------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against a field annotation and return it in canonical form."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping (section), got {type(value).__name__}")
        return _build(annotation, value, key)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: unknown value {value!r}; choose one of {', '.join(map(str, args))}")
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} ({value!r})")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    return _coerce_scalar(value, annotation, key)


def _coerce_scalar(value: Any, annotation: Any, key: str) -> Any:
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(annotation)
    if ok is None:
        raise TypeError(f"unsupported config annotation {annotation!r} at {key}")
    if not ok:
        raise ConfigError(f"{key}: expected {_type_name(annotation)}, got {type(value).__name__} ({value!r})")
    return float(value) if annotation is float else value


def _build(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for name in raw:
        if name not in names:
            where = f"{prefix}.{name}" if prefix else str(name)
            raise ConfigError(f"{where}: unknown key; valid keys here: {', '.join(names)}")
    values = {name: _coerce(raw[name], hints[name], f"{prefix}.{name}" if prefix else name) for name in raw}
    return cls(**values)


# --- semantic checks -----------------------------------------------------------------------------


def _check_positive(cfg: Config) -> None:
    positive = {
        "training.batch_size": cfg.training.batch_size,
        "training.epochs": cfg.training.epochs,
        "training.checkpoint_every": cfg.training.checkpoint_every,
        "training.keep_last": cfg.training.keep_last,
        "training.log_every": cfg.training.log_every,
        "diffusion.num_timesteps": cfg.diffusion.num_timesteps,
        "optim.lr": cfg.optim.lr,
        "sampling.steps": cfg.sampling.steps,
        "sampling.num_images": cfg.sampling.num_images,
        "model.in_channels": cfg.model.in_channels,
    }
    for key, value in positive.items():
        if not value > 0 or value == math.inf:  # also rejects NaN
            raise ConfigError(f"{key}: must be a finite number greater than 0, got {value}")
    if cfg.data.subset is not None and cfg.data.subset <= 0:
        raise ConfigError(f"data.subset: must be positive or null, got {cfg.data.subset}")
    bad = [e for e in cfg.training.grid_epochs if not 1 <= e <= cfg.training.epochs]
    if bad:
        raise ConfigError(f"training.grid_epochs: epochs {bad} are outside 1..{cfg.training.epochs}")
    _check_ranges(cfg)


def _check_ranges(cfg: Config) -> None:
    s, e = cfg.sampling, cfg.ema
    if not 0.0 <= s.eta <= 1.0:
        raise ConfigError(f"sampling.eta: must lie in [0, 1], got {s.eta}")
    o = cfg.optim
    if not all(0.0 <= beta < 1.0 for beta in o.betas):
        raise ConfigError(f"optim.betas: each must lie in [0, 1), got {list(o.betas)}")
    if not 0.0 < o.eps < math.inf:
        raise ConfigError(f"optim.eps: must be a finite number greater than 0, got {o.eps}")
    if e.warmup_steps < 0 or e.update_every < 1:
        raise ConfigError("ema.warmup_steps/update_every: need warmup_steps >= 0 and update_every >= 1")
    if not 0.0 <= e.max_decay < 1.0 or e.power <= 0.0:
        raise ConfigError(
            f"ema.max_decay/power: need 0 <= max_decay < 1 and power > 0, got {e.max_decay}, {e.power}"
        )


def _check_names(cfg: Config) -> None:
    if cfg.data.dataset not in DATASET_NAMES:
        raise ConfigError(
            f"data.dataset: unknown dataset {cfg.data.dataset!r}; known: {', '.join(DATASET_NAMES)}"
        )

    models = list_models()
    if cfg.model.name not in models:
        raise ConfigError(f"model.name: unknown model {cfg.model.name!r}; known models: {', '.join(models)}")
    if cfg.model.semantics not in SEMANTICS:
        raise ConfigError(
            f"model.semantics: unknown value {cfg.model.semantics!r}; choose one of {', '.join(SEMANTICS)}"
        )
    if cfg.diffusion.schedule not in available_schedules():
        raise ConfigError(
            f"diffusion.schedule: unknown schedule {cfg.diffusion.schedule!r}; "
            f"known schedules: {', '.join(available_schedules())}"
        )
    try:
        schedule = make_schedule(
            cfg.diffusion.schedule, cfg.diffusion.num_timesteps, **cfg.diffusion.schedule_options
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"diffusion.schedule_options: {err}") from err
    _check_sampler(cfg.sampling, schedule)
    _check_noise(cfg)
    if cfg.transfer.enabled:
        _check_transfer(cfg, models)


def _check_sampler(s: SamplingConfig, schedule: NoiseSchedule) -> None:
    """The sampler is looked up in the registry and built once, so the registry's name check and the
    sampler's own checks (DDIM: steps within the schedule, eta in [0, 1]) reject a config before training
    starts."""
    try:
        make_sampler(s.sampler, schedule, **sampler_options(s.sampler, steps=s.steps, eta=s.eta))
    except UnknownNameError as err:
        raise ConfigError(f"sampling.sampler: {err}") from err
    except ValueError as err:
        raise ConfigError(f"sampling: {err}") from err


def _check_noise(cfg: Config) -> None:
    try:
        make_noise_source(cfg.diffusion.noise, **cfg.diffusion.noise_options)
    except (UnknownNameError, ValueError) as err:
        raise ConfigError(f"diffusion.noise_options: {err}") from err


def _check_transfer(cfg: Config, models: list[str]) -> None:
    t = cfg.transfer
    if t.target_model is None:
        raise ConfigError("transfer.target_model: required when transfer.enabled is true")
    if t.target_model not in models:
        raise ConfigError(
            f"transfer.target_model: unknown model {t.target_model!r}; known models: {', '.join(models)}"
        )
    if t.classical_epochs <= 0 or t.finetune_epochs <= 0:
        raise ConfigError("transfer.classical_epochs/finetune_epochs: both must be positive")
    if t.classical_epochs + t.finetune_epochs != cfg.training.epochs:
        raise ConfigError(
            "training.epochs: must equal transfer.classical_epochs + transfer.finetune_epochs "
            f"({t.classical_epochs} + {t.finetune_epochs}) with transfer enabled, got {cfg.training.epochs}"
        )


# --- public API ----------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"training.epochs=5"`` -> (["training", "epochs"], 5); the value is read as a YAML scalar."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY.SUB=VALUE, e.g. training.epochs=5")
    return key.split("."), _yaml_load(raw, f"--set {key}")


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``key.sub=value`` override applied (unknown keys are kept so
    that validation can name them)."""
    result = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        _set_path(result, path, value, text)
    return result


def _set_path(raw: dict[str, Any], path: list[str], value: Any, what: str) -> None:
    node = raw
    for i, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(path[: i + 1])}: is a value, not a section; cannot set {what!r}")
        node = child
    node[path[-1]] = value


def config_from_dict(raw: Mapping[str, Any] | None, *, check_names: bool = True) -> Config:
    """Build and validate a :class:`Config`. ``check_names=False`` skips the model/schedule registries."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config: expected a mapping at the top level, got {type(raw).__name__}")
    cfg = _build(Config, raw, "")
    _check_positive(cfg)
    if check_names:
        _check_names(cfg)
    return cfg


def load_config(
    path: str | Path,
    overrides: Iterable[str] = (),
    *,
    values: Mapping[str, Any] | None = None,
    check_names: bool = True,
) -> Config:
    """Read a YAML config file, apply ``--set`` overrides (text, parsed as YAML) and then ``values``
    (dotted key -> already-typed value, e.g. ``{"output_dir": "runs/x"}``), validate, return the config."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(f"config file {str(path)!r} does not exist") from err
    except OSError as err:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {err.strerror}") from err
    raw = _yaml_load(text, str(path))
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    raw = apply_overrides(raw or {}, overrides)
    for key, value in (values or {}).items():
        _set_path(raw, key.split("."), value, key)
    return config_from_dict(raw, check_names=check_names)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))
