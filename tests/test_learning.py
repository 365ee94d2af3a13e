"""A real hybrid model learns: its training loss on the shipped MNIST subset falls by a stated margin."""

from __future__ import annotations

import statistics
from pathlib import Path

from hqdm.config import config_from_dict
from hqdm.train import Trainer

STEPS = 30  # one epoch of 240 images at batch 8
WINDOW = 10
#: The mean loss of the last WINDOW steps must be at most this fraction of the first WINDOW's. Seeds 0, 1
#: and 2 give 0.29, 0.32 and 0.33; a run whose optimiser never steps stays near 1.
MARGIN = 0.5


def test_a_small_hybrid_model_learns_on_the_embedded_mnist_subset(tmp_path: Path) -> None:
    """lite-qunet-8q (the second paper's lightweight U-Net with an 8-qubit circuit), fp32, fixed seed."""
    training = {"batch_size": 8, "epochs": 1, "seed": 0, "grid_epochs": [], "device": "cpu"}
    training |= {"precision": "fp32", "checkpoint_every": 1000, "log_every": 1000}
    cfg = config_from_dict(
        {
            "model": {"name": "lite-qunet-8q"},
            "data": {"dataset": "embedded-mnist", "subset": STEPS * 8},
            "training": training,
            "output_dir": str(tmp_path / "run"),
        }
    )
    losses: list[float] = []
    Trainer(cfg, progress=False, on_step=lambda step, loss: losses.append(loss)).run()
    assert len(losses) == STEPS
    first, last = statistics.mean(losses[:WINDOW]), statistics.mean(losses[-WINDOW:])
    assert last <= MARGIN * first, (
        f"mean loss {first:.4f} over the first {WINDOW} steps, {last:.4f} over the last"
    )
