"""bf16 against fp32 training: loss curves of paired runs overlaid, and the final FID/KID of each run.

    python benchmarks/precision_evidence.py results/precision-mnist

Reads ``<dir>/<run>/log.csv`` and ``<dir>/<run>/eval/evaluation.json`` of every run below ``dir``
(made by the ``hqdm train`` / ``hqdm evaluate`` commands in docs/performance.md, "bf16 against fp32") and
writes ``<dir>/loss_curves.png`` and ``<dir>/summary.md``.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from hqdm.train.logs import read_log


def smooth(values: list[float], window: int = 10) -> list[float]:
    """Trailing mean over ``window`` log rows (each row already averages 10 steps)."""
    return [
        sum(values[max(0, i - window + 1) : i + 1]) / (i - max(0, i - window + 1) + 1)
        for i in range(len(values))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    folder = parser.parse_args().folder
    runs = sorted(p.parent for p in folder.glob("*/log.csv"))
    fig, (full, late) = plt.subplots(1, 2, figsize=(11, 4.2))
    lines = [
        "| run | steps | mean loss, last 500 steps | FID | KID | n | sampler | FID network |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for run in runs:
        log = read_log(run / "log.csv")
        steps, losses = [r.step for r in log], [r.loss for r in log]
        for ax in (full, late):
            ax.plot(steps, smooth(losses), label=run.name, linewidth=1.2)
        tail = [r.loss for r in log if r.step > steps[-1] - 500]
        record_path = run / "eval" / "evaluation.json"
        if record_path.is_file():
            record = json.loads(record_path.read_text())
            m, s = record["metrics"], record["settings"]
            scores = " | ".join(
                [
                    f"{m['fid']:.2f}",
                    f"{m['kid_mean']:.4f} ± {m['kid_std']:.4f}",
                    str(m["num_generated"]),
                    f"ddim{s['steps']}",
                    s.get("feature_precision", "fp32"),
                ]
            )
        else:
            scores = "not evaluated | | | |"
        lines.append(f"| {run.name} | {steps[-1]} | {sum(tail) / len(tail):.5f} | {scores} |")
    full.set(xlabel="step", ylabel="P2 loss (trailing mean of 100 steps)", yscale="log", title="all steps")
    late.set(xlabel="step", title="steps 1000 and on", xlim=(1000, None), ylim=(0.009, 0.016))
    for ax in (full, late):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "loss_curves.png", dpi=110)
    (folder / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
