"""The report of ``hqdm hardware measure``: FID/KID per readout setting (mean ± std over seeds), the paired
FID difference to the exact readout, whether it lies within the seed spread, and FID against shots.

*Within the seed spread* means ``|mean over seeds of FID(setting, seed) - FID(exact, seed)|`` is at most the
standard deviation of the exact model's FID over the seeds: the readout changes FID by less than redrawing
the samples does. The shot count "from which samples are indistinguishable" is the smallest one measured
from which every larger measured count is within the spread.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hqdm.diffusion import sampler_label
from hqdm.experiments.hardware_settings import HardwareSettings
from hqdm.experiments.tables import mean_std
from hqdm.files import atomic_path, atomic_write_text
from hqdm.quantum.noise_levels import RANDOM_READOUT, READOUT_LEVELS

REPORT_MD = "hardware.md"
REPORT_JSON = "hardware.json"
PLOT = "fid_vs_shots.png"


@dataclass(frozen=True)
class Row:
    label: str
    shots: int | None
    noise: str | None
    seeds: tuple[int, ...]
    fid: tuple[float | None, float | None]  # mean, std over seeds
    kid: tuple[float | None, float | None]
    difference: tuple[float | None, float | None]  # paired FID - exact FID: mean, std
    within_spread: bool | None  # None: no spread (one seed) or no exact cell


def summarize(cells: list[dict[str, Any]], settings: HardwareSettings) -> tuple[list[Row], float | None]:
    """One row per setting, in the settings' order, and the exact model's FID std over seeds."""
    fid = {(c["setting"]["label"], c["seed"]): float(c["metrics"]["fid"]) for c in cells}
    kid = {(c["setting"]["label"], c["seed"]): float(c["metrics"]["kid_mean"]) for c in cells}
    exact = {seed: value for (label, seed), value in fid.items() if label == "exact"}
    spread = statistics.stdev(exact.values()) if len(exact) > 1 else None
    rows = []
    for setting in settings.settings():
        seeds = tuple(s for s in settings.seeds if (setting.label, s) in fid)
        paired = [fid[(setting.label, s)] - exact[s] for s in seeds if s in exact]
        difference = mean_std(paired) if paired else (None, None)
        within = None if spread is None or difference[0] is None else abs(difference[0]) <= spread
        rows.append(
            Row(
                setting.label,
                setting.shots,
                setting.noise,
                seeds,
                mean_std([fid[(setting.label, s)] for s in seeds]) if seeds else (None, None),
                mean_std([kid[(setting.label, s)] for s in seeds]) if seeds else (None, None),
                difference,
                within,
            )
        )
    return rows, spread


def indistinguishable_from(rows: list[Row]) -> int | None:
    """The smallest measured shot count from which every larger one is within the seed spread (noise-free
    settings only); None if even the largest is not, or nothing can be said."""
    shot_rows = sorted((r for r in rows if r.noise is None and r.shots is not None), key=lambda r: r.shots)
    found = None
    for row in reversed(shot_rows):
        if not row.within_spread:
            break
        found = row.shots
    return found


def _fmt(pair: tuple[float | None, float | None], digits: int) -> str:
    mean, std = pair
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _verdict(rows: list[Row], spread: float | None) -> str:
    if spread is None:
        return "One seed (or no exact cell): no seed spread, so no verdict on indistinguishability."
    shots = indistinguishable_from(rows)
    if shots is None:
        return f"No measured shot count is within the seed spread (exact FID std {spread:.2f})."
    return (
        f"From {shots:,} shots on, FID differs from the exact readout by less than the seed spread "
        f"(exact FID std {spread:.2f} over {len(rows[0].seeds)} seeds): indistinguishable at this n."
    )


def _control(rows: list[Row], spread: float | None) -> list[str]:
    """What the random-readout control says about the shot verdict: nothing is to be read from shots that
    do not matter because the circuits do not."""
    row = next((r for r in rows if r.noise == RANDOM_READOUT and r.difference[0] is not None), None)
    if row is None:
        return []
    said = (
        "Read at random (every <Z> = 0: the circuits' contribution removed), FID moves by "
        f"{row.difference[0]:+.2f}"
    )
    if spread is None:
        return ["", f"{said}; one seed, so no comparison with the seed spread."]
    if row.within_spread:
        return [
            "",
            f"{said}, within the seed spread: at this n the samples depend on the circuits less than on the "
            "sampling seed, so the shot counts above say little about what a QPU's readout would cost a "
            "model that needs its circuits (compare each shot count's paired difference with this one).",
        ]
    return [
        "",
        f"{said}, outside the seed spread: the model depends on its circuits, and the shot counts above "
        "measure what a QPU's readout costs it.",
    ]


def write_hardware_report(out: Path, cells: list[dict[str, Any]], settings: HardwareSettings) -> Path:
    """``hardware.md`` (table and verdict), ``hardware.json`` and ``fid_vs_shots.png`` in ``out``."""
    rows, spread = summarize(cells, settings)
    model = next((c.get("model_name") for c in cells), None)
    checkpoint = next((c.get("checkpoint") for c in cells), None)
    lines = [
        f"# Finite shots and hardware noise: {model} ({checkpoint})",
        "",
        f"{settings.num_samples} images per cell, "
        f"{sampler_label(settings.sampler, settings.steps, settings.eta)}, "
        f"seeds {list(settings.seeds)}; "
        f"noise levels read with {settings.noise_shots or 'exact'} shots, gate noise by "
        f"{settings.trajectories} trajectories where a circuit is too large for a density matrix.",
        "",
        "| setting | shots | noise | FID | KID | FID - exact (paired) | within seed spread |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for row in rows:
        noise = "-" if row.noise is None else f"{row.noise} ({READOUT_LEVELS[row.noise].describe()})"
        within = {True: "yes", False: "no", None: "n/a"}[row.within_spread] if row.label != "exact" else "-"
        lines.append(
            f"| {row.label} | {row.shots or 'exact'} | {noise} | {_fmt(row.fid, 2)} | {_fmt(row.kid, 4)} | "
            f"{_fmt(row.difference, 2) if row.label != 'exact' else '-'} | {within} |"
        )
    lines += ["", _verdict(rows, spread), *_control(rows, spread), "", f"![FID against shots]({PLOT})", ""]
    atomic_write_text(out / REPORT_MD, "\n".join(lines))
    summary = {
        "rows": [asdict(r) for r in rows],
        "seed_spread": spread,
        "from_shots": indistinguishable_from(rows),
    }
    atomic_write_text(out / REPORT_JSON, json.dumps(summary, indent=2) + "\n")
    _plot(rows, spread, out / PLOT)
    return out / REPORT_MD


def _plot(rows: list[Row], spread: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed; the file is the product
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    shot_rows = sorted(
        (r for r in rows if r.noise is None and r.shots and r.fid[0] is not None), key=lambda r: r.shots
    )
    if shot_rows:  # without them, a log axis has no positive values to span
        ax.errorbar(
            [r.shots for r in shot_rows], [r.fid[0] for r in shot_rows],
            yerr=[r.fid[1] or 0.0 for r in shot_rows], marker="o", capsize=3, label="finite shots",
        )  # fmt: skip
        ax.set_xscale("log", base=2)
    exact = next((r for r in rows if r.label == "exact" and r.fid[0] is not None), None)
    if exact is not None:
        ax.axhline(exact.fid[0], color="black", label="exact readout")
        if spread is not None:
            ax.axhspan(
                exact.fid[0] - spread, exact.fid[0] + spread, color="black", alpha=0.1, label="± seed std"
            )
    for row, style in zip(
        (r for r in rows if r.noise and r.fid[0] is not None), ("--", ":", "-."), strict=False
    ):
        control = row.noise == RANDOM_READOUT
        label = "random readout (circuits removed)" if control else f"noise: {row.noise}"
        ax.axhline(row.fid[0], linestyle=style, color="tab:gray" if control else "tab:red", label=label)
    ax.set_xlabel("shots per circuit")
    ax.set_ylabel("FID (mean ± std over seeds)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
