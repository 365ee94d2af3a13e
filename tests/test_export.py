"""``hqdm export``: a checkpoint becomes a pretrained folder that samples exactly like the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hqdm.cli import main
from hqdm.config import config_from_dict
from hqdm.models.pretrained import load_pretrained
from hqdm.train import latest_checkpoint, load_checkpoint_model, train

T = 20


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    cfg = config_from_dict(
        {
            "model": {"name": "unet"},
            "data": {"dataset": "embedded-fashion-mnist", "subset": 6},
            "diffusion": {"num_timesteps": T},
            "ema": {"warmup_steps": 0, "update_every": 1},  # EMA and online weights differ from step 3
            "training": {"batch_size": 2, "epochs": 1, "seed": 3, "grid_epochs": [], "precision": "fp32"},
            "output_dir": str(out),
        }
    )
    train(cfg, progress=False)
    return out


def _record(split: str) -> dict:
    settings = {"num_samples": 50, "sampler": "ddim", "steps": 100, "eta": 0.0, "metrics": ["fid", "kid"]}
    settings |= {"seed": 0, "batch_size": 25, "kid_subset_size": 10, "feature_precision": "bf16"}
    return {
        "metrics": {
            "fid": 61.234,
            "kid_mean": 0.0123,
            "kid_std": 0.0011,
            "num_generated": 50,
            "num_real": 70,
        },
        "settings": settings,
        "real": {"dataset": "fashion-mnist", "split": split},
        "checkpoint": {"model_name": "unet"},
    }


def test_the_card_names_the_study_folder_and_eta_that_scored_it() -> None:
    from hqdm.experiments.export import _scores

    record = _record("test")
    record["settings"]["eta"] = 1.0
    record["checkpoint"]["path"] = "results/study-x/runs/unet/seed0/epochs/epoch_010"
    assert (
        "hqdm study --dataset fashion-mnist --models unet --seeds 0 --out results/study-x --num-samples 50 "
        "--steps 100 --eta 1 --fid-precision bf16 --data-dir DATA"
    ) in _scores(record)


def test_exported_folder_holds_the_ema_weights_and_samples_like_the_checkpoint(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "evaluation.json").write_text(json.dumps(_record("test")))
    folder = tmp_path / "fmnist-unet"
    argv = ["export", str(run_dir), "--out", str(folder), "--evaluation", str(tmp_path / "evaluation.json")]
    assert main(argv) == 0 and str(folder) in capsys.readouterr().out

    ema, _ = load_checkpoint_model(latest_checkpoint(run_dir), precision="fp32")
    loaded = load_pretrained(folder)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([1, T - 1])
    with torch.no_grad():
        assert torch.equal(loaded(x, t), ema(x, t))

    card = (folder / "README.md").read_text()
    assert (
        card.startswith("# fmnist-unet\n")
        and "`unet` (paper semantics): 483,321 parameters, 0 of them quantum" in card
    )
    assert (
        "embedded-fashion-mnist, train split (6 images)" in card
        and "1 epochs, 3 steps, batch 2, seed 3" in card
    )
    assert "FID 61.23, KID 0.0123 ± 0.0011" in card and "50 EMA samples (DDIM, 100 steps" in card
    assert "70 fashion-mnist test images" in card
    assert "hqdm study --dataset fashion-mnist --models unet --seeds 0 --num-samples 50 --steps 100" in card

    draws = []
    for source in (["--pretrained", str(folder)], [str(run_dir)]):
        out = tmp_path / f"samples{len(draws)}"
        argv = [
            "sample",
            *source,
            "-n",
            "3",
            "--steps",
            "2",
            "--seed",
            "4",
            "--precision",
            "fp32",
            "--out",
            str(out),
        ]
        assert main(argv) == 0
        with np.load(out / "samples.npz") as npz:
            draws.append(npz["images"])
    assert np.array_equal(draws[0], draws[1]) and draws[0].std() > 0


def test_a_train_split_evaluation_puts_its_command_in_the_card(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "evaluation.json").write_text(json.dumps(_record("train")))
    argv = [
        "export",
        str(run_dir),
        "--out",
        str(tmp_path / "m"),
        "--evaluation",
        str(tmp_path / "evaluation.json"),
    ]
    assert main(argv) == 0
    card = (tmp_path / "m" / "README.md").read_text()
    assert "hqdm evaluate CHECKPOINT --num-samples 50 --sampler ddim --steps 100" in card
    assert "--fid-precision bf16" in card
