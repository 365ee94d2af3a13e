"""The measured answer to "would it run on a QPU?": FID and KID of a trained hybrid read out with finite
shots and under hardware noise, against the same model read out exactly (``hqdm hardware measure``).

Every setting (exact, each shot count, each noise level) is sampled with the same seeds, the same number of
images and the same sampler; for a given seed the images start from the same initial noise and the shot /
trajectory draws are seeded from it too (:func:`hqdm.models.measurement.set_measurement`). Each (setting,
seed) cell is written to ``cells/<label>-seed<k>.json`` as soon as it is scored, and a rerun skips the cells
it finds, so the measurement can be stopped and resumed; a cell scored with another protocol (number of
images, sampler, steps, eta, FID precision) is a named error, not a skip. A cell itself resumes too (a
noisy one runs for hours): after every batch its images so far and where each circuit layer's draws stand
go to ``cells/<label>-seed<k>.partial.pt``, and a rerun continues after the last saved batch with the draws
it would have made, so a resumed cell scores what an uninterrupted one would. The report:
:mod:`hqdm.experiments.hardware_report`.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hqdm.config import ConfigError, ModelConfig, config_from_dict
from hqdm.experiments.evaluate_checkpoint import (
    EvalSettings,
    package_versions,
    real_reference_images,
    sample_batches,
)
from hqdm.experiments.hardware_report import write_hardware_report
from hqdm.experiments.hardware_settings import HardwareSettings, Setting
from hqdm.files import atomic_path, atomic_write_text
from hqdm.metrics import evaluate_images
from hqdm.models.measurement import draw_states, restore_draws, set_measurement
from hqdm.quantum.measurement import Measurement
from hqdm.train.checkpoint import resolve_checkpoint
from hqdm.train.generate import load_checkpoint_model
from hqdm.train.io import save_grid_png
from hqdm.train.setup import ModelFactory, default_model_factory

GRID_IMAGES = 64


def measured_model_factory(
    measurement: Measurement | None, seed: int, base: ModelFactory = default_model_factory
) -> ModelFactory:
    """A model factory whose models read their circuits out with ``measurement`` (seeded with ``seed``)."""

    def build(spec: ModelConfig) -> nn.Module:
        model = base(spec)
        set_measurement(model, measurement, seed=seed)
        return model

    return build


@dataclass
class HardwareResult:
    out_dir: Path
    cells: list[dict[str, Any]] = field(default_factory=list)


def _cell_path(out: Path, setting: Setting, seed: int) -> Path:
    return out / "cells" / f"{setting.label}-seed{seed}.json"


def _partial_path(out: Path, setting: Setting, seed: int) -> Path:
    return out / "cells" / f"{setting.label}-seed{seed}.partial.pt"


def _saved_batches(path: Path, evaluation: EvalSettings, model: nn.Module) -> tuple[list[Tensor], float]:
    """The batches a stopped cell had sampled and the seconds it had run, with the model's draws put back
    where they stood after them; none when no such cell was stopped."""
    if not path.is_file():
        return [], 0.0
    saved = torch.load(path, weights_only=True)
    changes = evaluation.protocol_changes(saved["evaluation"])
    if saved["evaluation"]["batch_size"] != evaluation.batch_size:  # the draws follow the batches
        changes = f"batch size {saved['evaluation']['batch_size']} -> {evaluation.batch_size}"
    if changes:
        raise ConfigError(
            f"{path} was sampled another way than this run asks ({changes}); one --out folder holds one "
            "protocol: delete the file or use another --out"
        )
    restore_draws(model, saved["draws"])
    return list(saved["images"].split(evaluation.batch_size)), saved["seconds"]


def _saving(
    batches: Iterator[Tensor],
    images: list[Tensor],
    path: Path,
    model: nn.Module,
    evaluation: EvalSettings,
    before: float,
) -> Iterator[Tensor]:
    """The new batches, each first added to ``images`` and saved with the model's draws, the protocol and
    the seconds the cell has run (``before`` this run), so that a cell stopped now resumes after it."""
    started = time.perf_counter()
    for batch in batches:
        images.append(batch)
        state = {
            "evaluation": evaluation.as_dict(),
            "images": torch.cat(images),
            "draws": draw_states(model),
            "seconds": before + time.perf_counter() - started,
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        yield batch


def _stored_cell(path: Path, evaluation: EvalSettings) -> dict[str, Any]:
    """A cell scored earlier, if it was scored the way this run asks: one folder holds one protocol."""
    cell = json.loads(path.read_text(encoding="utf-8"))
    changes = evaluation.protocol_changes(cell["evaluation"])
    if changes:
        raise ConfigError(
            f"{path} was scored another way than this run asks ({changes}); one --out folder holds one "
            "protocol: use another --out"
        )
    return cell


def run_hardware_study(
    checkpoint: str | Path,
    out_dir: str | Path,
    settings: HardwareSettings,
    *,
    data_dir: str | Path | None = None,
    device: torch.device | None = None,
    precision: str | None = "fp32",
    cache_dir: str | Path | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
    model_factory: ModelFactory = default_model_factory,
    feature_extractor: nn.Module | None = None,
    real_images: Tensor | None = None,
) -> HardwareResult:
    """Score every (setting, seed) cell not yet on disk, then write the report (table, plot, JSON)."""
    out = Path(out_dir)
    resolved = resolve_checkpoint(Path(checkpoint))
    model, raw = load_checkpoint_model(
        resolved, device=device, precision=precision, model_factory=model_factory
    )
    cfg = config_from_dict(raw, check_names=False)
    if real_images is None:
        real_images = real_reference_images(
            cfg.data.dataset, settings.num_samples, data_dir or cfg.data.data_dir
        )
    cells = []
    for setting in settings.settings():
        for seed in settings.seeds:
            path = _cell_path(out, setting, seed)
            if path.is_file():
                cells.append(_stored_cell(path, settings.evaluation(seed)))
                continue
            measurement = setting.measurement()
            set_measurement(model, measurement, seed=seed)
            evaluation = settings.evaluation(seed)
            partial = _partial_path(out, setting, seed)
            images, before = _saved_batches(partial, evaluation, model)
            done = sum(len(batch) for batch in images)
            resumed = f" (resumed after {done})" if done else ""
            log(f"{setting.label}, seed {seed}: sampling {settings.num_samples} images{resumed}")
            started = time.perf_counter()
            shape = tuple(real_images.shape[1:])
            new = sample_batches(model, cfg, evaluation, image_shape=shape, progress=progress, start=done)
            batches = itertools.chain(list(images), _saving(new, images, partial, model, evaluation, before))
            metrics = evaluate_images(
                batches, real_images, metrics=evaluation.metrics, cache_dir=cache_dir,
                kid_subset_size=evaluation.kid_subset_size, feature_precision=evaluation.feature_precision,
                seed=seed, batch_size=evaluation.batch_size, device=next(model.parameters()).device,
                progress=progress, feature_extractor=feature_extractor,
            )  # fmt: skip
            if seed == settings.seeds[0]:
                grid = torch.cat(images)[:GRID_IMAGES].numpy().astype(np.uint8)
                save_grid_png(grid, out / "grids" / f"{setting.label}.png")
            cell = {
                "setting": asdict(setting),
                "measurement": (measurement or Measurement()).as_dict(),
                "seed": seed,
                "metrics": metrics,
                "evaluation": evaluation.as_dict(),
                "checkpoint": str(resolved),
                "model_name": raw.get("model", {}).get("name"),
                "seconds": round(before + time.perf_counter() - started, 2),
                "versions": package_versions(),
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(cell, indent=2) + "\n")
            partial.unlink(missing_ok=True)
            cells.append(cell)
    set_measurement(model, None)
    write_hardware_report(out, cells, settings)
    return HardwareResult(out, cells)
