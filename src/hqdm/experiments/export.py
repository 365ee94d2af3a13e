"""Turn a training checkpoint into a portable pretrained folder with a model card.

The folder is what :func:`hqdm.models.pretrained.load_pretrained` reads: the checkpoint's EMA weights
(fp32), the model's build spec and the run's diffusion settings, plus a ``README.md`` card saying what the
model was trained on, for how long, and, when an evaluation record is given, the scores and the command
that measured them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hqdm.config import config_from_dict
from hqdm.experiments.evaluate_checkpoint import EvalSettings, evaluate_command
from hqdm.models.pretrained import save_pretrained
from hqdm.models.registry import count_parameters
from hqdm.train.checkpoint import read_state, resolve_checkpoint
from hqdm.train.generate import load_checkpoint_model

__all__ = ["export_pretrained", "model_card"]


def _study_out(kept_epoch: str | None) -> str:
    """`` --out FOLDER`` of the study that kept this epoch (``FOLDER/runs/<model>/seed<k>/epochs/epoch_NNN``),
    or nothing when the path is not a study's."""
    parts = Path(kept_epoch or "").parts
    if len(parts) > 5 and parts[-5] == "runs" and parts[-2] == "epochs":
        return f" --out {Path(*parts[:-5]).as_posix()}"
    return ""


def _scores(record: dict[str, Any]) -> str:
    m, s = record["metrics"], record["settings"]
    sampler = "DDPM (every timestep)" if s["steps"] is None else f"DDIM, {s['steps']} steps, eta {s['eta']}"
    real = record["real"]
    lines = [
        "## Scores",
        "",
        f"- FID {m['fid']:.2f}"
        + (f", KID {m['kid_mean']:.4f} ± {m['kid_std']:.4f}" if "kid_mean" in m else ""),
        f"- {m['num_generated']} EMA samples ({sampler}, seed {s['seed']}) against {m['num_real']} "
        f"{real['dataset']} {real['split']} images; FID network in {s.get('feature_precision', 'fp32')}",
    ]
    if real["split"] == "train":
        settings = EvalSettings(**{**s, "metrics": tuple(s["metrics"])})
        command = evaluate_command(Path("CHECKPOINT"), Path("OUT"), settings)
    else:  # the test split is scored by the study (docs/RESULTS.md), one cell of which this is
        command = (
            f"hqdm study --dataset {real['dataset']} --models {record['checkpoint']['model_name']} "
            f"--seeds {s['seed']}{_study_out(record['checkpoint'].get('path'))} "
            f"--num-samples {m['num_generated']} --steps {s['steps']}"
            + (f" --eta {s['eta']:g}" if s.get("eta") else "")
            + f" --fid-precision {s.get('feature_precision', 'fp32')} --data-dir DATA"
        )
    lines += ["", "Measured with:", "", "```", command, "```"]
    return "\n".join(lines)


def model_card(name: str, checkpoint: Path, raw_config: dict[str, Any], params: tuple[int, int]) -> str:
    """The card's text without scores: model, data, budget."""
    state, _ = read_state(checkpoint)
    cfg = config_from_dict(raw_config, check_names=False)
    classical, quantum = params
    t, o = cfg.training, cfg.optim
    return "\n".join(
        [
            f"# {name}",
            "",
            f"`{state.model_name}` ({cfg.model.semantics} semantics): {classical + quantum:,} parameters, "
            f"{quantum:,} of them quantum.",
            "",
            f"- Data: {cfg.data.dataset}, train split"
            + (f" ({cfg.data.subset} images)" if cfg.data.subset else " (all of it)"),
            f"- Training: {state.epoch} epochs, {state.step} steps, batch {t.batch_size}, seed {t.seed}, "
            f"Adam lr {o.lr} betas {tuple(o.betas)}, {t.precision} precision; "
            f"{cfg.diffusion.schedule} schedule, T = {cfg.diffusion.num_timesteps}",
            "- Weights: the EMA weights of that checkpoint, stored in fp32",
            "",
            "Sample it with `hqdm sample --pretrained " + name + " -n 64 --out samples/`.",
        ]
    )


def export_pretrained(
    checkpoint: str | Path,
    folder: str | Path,
    *,
    name: str | None = None,
    evaluation: str | Path | None = None,
) -> Path:
    """Write ``folder`` (config.json, model.safetensors, README.md) from ``checkpoint``'s EMA weights.

    ``evaluation`` is an ``evaluation.json`` of this checkpoint whose scores go into the card."""
    checkpoint = resolve_checkpoint(Path(checkpoint))
    folder = Path(folder)
    model, raw = load_checkpoint_model(checkpoint, use_ema=True, precision="fp32")
    model = model.to("cpu")
    card = model_card(name or folder.name, checkpoint, raw, count_parameters(model))
    if evaluation is not None:
        card += "\n\n" + _scores(json.loads(Path(evaluation).read_text(encoding="utf-8")))
    diffusion = asdict(config_from_dict(raw, check_names=False).diffusion)
    return save_pretrained(model, folder, diffusion=diffusion, card=card + "\n")
