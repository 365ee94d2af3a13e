"""The study's report: per model and epoch, FID/KID mean ± std over seeds and the paired difference to the
classical U-Net with a 95% confidence interval; FID-vs-epoch curves in one plot. The EMA weights' scores
and the online weights' scores (where a study scored them) are separate tables, each paired within itself.

A paired difference is ``FID(model, seed k) - FID(unet, seed k)`` at the same epoch (the two runs share
initial noise, data order and sampling noise). Its 95% interval is Student's t over the seeds present for
both; with one seed there is no interval. Verdict for "the model is ahead" (lower FID): ``ahead`` when the
whole interval lies below 0, ``behind`` when it lies above, ``no difference shown`` otherwise, and
``one seed: no interval`` with a single pair.

Claim 4 (the gain comes from the circuits) has its own table: each control (a model registered with
``control_for``, e.g. the classical twin of the 1HQConv vertex) paired against its hybrid,
``FID(hybrid, seed k) - FID(control, seed k)``; ``ahead`` there means the circuits beat their control.
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hqdm.experiments.tables import mean_std
from hqdm.files import atomic_path, atomic_write_text
from hqdm.models.registry import control_for

__all__ = ["Comparison", "paired_comparison", "write_report"]

CLASSICAL = "unet"
REPORT_MD = "report.md"
FID_PLOT = "fid_vs_epoch.png"
WEIGHTS_TITLES = {"ema": "EMA weights (the paper's)", "online": "Online weights"}
Key = tuple[str, int, int]  # (model, seed, epoch)


@dataclass(frozen=True)
class Comparison:
    """``model`` minus ``reference`` (by default the U-Net) at one epoch, over the seeds both have."""

    model: str
    reference: str
    epoch: int
    seeds: tuple[int, ...]
    mean: float
    low: float | None  # 95% interval; None with one seed
    high: float | None

    @property
    def verdict(self) -> str:
        if self.low is None or self.high is None:
            return "one seed: no interval"
        if self.high < 0:
            return "ahead"
        if self.low > 0:
            return "behind"
        return "no difference shown"


def _t_quantile(dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, dof))


def paired_comparison(
    model: str, epoch: int, values: dict[Key, float], reference: str = CLASSICAL
) -> Comparison | None:
    """FID(``model``) - FID(``reference``) at ``epoch``, paired by seed; ``values[(model, seed, epoch)]``."""
    seeds = sorted(s for (m, s, e) in values if m == model and e == epoch and (reference, s, epoch) in values)
    if not seeds:
        return None
    diffs = [values[model, s, epoch] - values[reference, s, epoch] for s in seeds]
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return Comparison(model, reference, epoch, tuple(seeds), mean, None, None)
    half = _t_quantile(len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return Comparison(model, reference, epoch, tuple(seeds), mean, mean - half, mean + half)


def _read(metrics_csv: Path) -> list[dict[str, str]]:
    with metrics_csv.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _fmt(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def _interval(c: Comparison | None) -> str:
    if c is None:
        return "-"
    if c.low is None or c.high is None:
        return f"{c.mean:+.2f}"
    return f"{c.mean:+.2f} [{c.low:+.2f}, {c.high:+.2f}]"


def write_report(out_dir: Path, dataset: str, metrics_csv: Path) -> Path:
    """``report.md`` and ``fid_vs_epoch.png`` next to ``metrics.csv``."""
    rows = _read(metrics_csv)
    fid: dict[str, dict[Key, float]] = {}
    kid: dict[str, dict[Key, float]] = {}
    for r in rows:
        key = (r["model"], int(r["seed"]), int(r["epoch"]))
        fid.setdefault(r["weights"], {})[key] = float(r["fid"])
        kid.setdefault(r["weights"], {})[key] = float(r["kid_mean"])
    fid = {w: fid[w] for w in sorted(fid, key=lambda w: w != "ema")}  # the paper's EMA weights first
    params = {r["model"]: r["params"] for r in rows}
    first = rows[0]
    lines = [
        f"# Study: {dataset}",
        "",
        f"FID and KID of {first['num_generated']} samples ({first['sampler']}, classical layers in "
        f"{first['precision']}) against {first['num_real']} {first['real_split']} images, FID network in "
        f"{first['fid_precision']}. Mean ± std over seeds; 'vs unet' is the paired FID difference to the "
        "classical U-Net (same seeds, same weights) with its 95% t-interval; negative = the model is ahead.",
    ]
    for weights in fid:
        lines += ["", f"## {WEIGHTS_TITLES.get(weights, weights)}", ""]
        lines += _table(fid[weights], kid[weights], params)
        lines += _controls_table(fid[weights])
    atomic_write_text(out_dir / REPORT_MD, "\n".join(lines) + "\n")
    _plot(out_dir / FID_PLOT, dataset, fid)
    return out_dir / REPORT_MD


def _models(values: dict[Key, float]) -> list[str]:
    return sorted({m for m, _, _ in values}, key=lambda m: (m != CLASSICAL, m))


def _table(fid: dict[Key, float], kid: dict[Key, float], params: dict[str, str]) -> list[str]:
    lines = [
        "| model | params | epoch | seeds | FID | KID | vs unet: FID difference [95% CI] | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    epochs = sorted({e for _, _, e in fid})
    for model in _models(fid):
        for epoch in epochs:
            seeds = sorted(s for m, s, e in fid if m == model and e == epoch)
            if not seeds:
                continue
            f = mean_std([fid[model, s, epoch] for s in seeds])
            k = mean_std([kid[model, s, epoch] for s in seeds])
            c = None if model == CLASSICAL else paired_comparison(model, epoch, fid)
            lines.append(
                f"| {model} | {int(params[model]):,} | {epoch} | {len(seeds)} | {_fmt(*f, 2)} | "
                f"{_fmt(*k, 4)} | {_interval(c)} | {c.verdict if c else '-'} |"
            )
    return lines


def _controls_table(fid: dict[Key, float]) -> list[str]:
    """Each control against the hybrid it stands in for (claim 4); nothing when no control was scored."""
    pairs = sorted((hybrid, m) for m in {m for m, _, _ in fid} if (hybrid := control_for(m)))
    comparisons = [
        c
        for hybrid, control in pairs
        for epoch in sorted({e for _, _, e in fid})
        if (c := paired_comparison(hybrid, epoch, fid, reference=control)) is not None
    ]
    if not comparisons:
        return []
    return [
        "",
        "The circuits against their controls: the hybrid's FID minus its control's at the same seeds "
        "(negative = the circuits are ahead).",
        "",
        "| hybrid | control | epoch | seeds | FID difference [95% CI] | verdict for the circuits |",
        "|---|---|---:|---:|---:|---|",
        *(
            f"| {c.model} | {c.reference} | {c.epoch} | {len(c.seeds)} | {_interval(c)} | {c.verdict} |"
            for c in comparisons
        ),
    ]


def _plot(path: Path, dataset: str, fid: dict[str, dict[Key, float]]) -> None:
    """Left: FID per model, one dot per seed and a line through the means. Right: the paired difference to
    the U-Net, one dot per seed and a line through the means (below 0 the model is ahead). Solid lines
    for the EMA weights, dashed for the online weights. Dots rather than a band, because the seeds scored
    so far can differ between epochs and models, and a mean over other seeds is another comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_fid, ax_diff) = plt.subplots(1, 2, figsize=(11.5, 4.4))
    colours: dict[str, str] = {}  # a model keeps its colour across weights and panels
    for weights, values in fid.items():
        style, suffix = ("-", "") if weights == "ema" else ("--", f" ({weights})")
        for model in _models(values):
            points = [(e, v) for (m, _, e), v in values.items() if m == model]
            seeds = len({s for m, s, _ in values if m == model})
            label = f"{model}{suffix}, {seeds} seed{'s' if seeds > 1 else ''}"
            colours[model] = _dots_and_means(ax_fid, points, style, colours.get(model), label)
            diffs = [
                (e, v - values[CLASSICAL, s, e])
                for (m, s, e), v in values.items()
                if m == model != CLASSICAL and (CLASSICAL, s, e) in values
            ]
            if diffs:
                _dots_and_means(ax_diff, diffs, style, colours[model], f"{model}{suffix}")
    ax_fid.set(xlabel="epoch", ylabel="FID (dots: seeds, line: mean)", title=f"{dataset}: FID vs epoch")
    ax_fid.set_yscale("log")
    ax_diff.axhline(0.0, color="black", linewidth=0.8)
    ax_diff.set(xlabel="epoch", ylabel=f"FID(model) - FID({CLASSICAL}), same seed")
    ax_diff.set_title("paired difference (below 0: ahead)")
    for ax in (ax_fid, ax_diff):
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _dots_and_means(
    ax: Any, points: list[tuple[int, float]], style: str, colour: str | None, label: str
) -> str:
    """``(epoch, value)`` points as dots and the per-epoch mean as a line; returns the colour used."""
    epochs = sorted({e for e, _ in points})
    means = [statistics.fmean(v for e, v in points if e == epoch) for epoch in epochs]
    (line,) = ax.plot(epochs, means, linestyle=style, color=colour, label=label)
    ax.scatter([e for e, _ in points], [v for _, v in points], color=line.get_color(), s=14, alpha=0.7)
    return line.get_color()
