"""``hqdm demo``: pretrained models side by side (the default), and the training demo run again and again."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hqdm.models.pretrained as pretrained
from hqdm.cli import EXIT_USER_ERROR, main
from hqdm.models import build_model
from hqdm.models.pretrained import save_pretrained
from hqdm.train import load_pipeline, read_state
from hqdm.train.demo import COMPARED_MODELS
from hqdm.train.io import make_grid


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two models 'shipped' in a temporary package folder, with random (untrained) weights."""
    folder = tmp_path / "shipped"
    for seed, (name, model) in enumerate(zip(COMPARED_MODELS, ("qvunet-1hq", "unet"), strict=True)):
        torch.manual_seed(seed)
        save_pretrained(
            build_model(model), folder / name, diffusion={"schedule": "cosine", "num_timesteps": 1000}
        )
    monkeypatch.setattr(pretrained, "SHIPPED_DIR", folder)
    return folder


def test_default_demo_draws_both_shipped_models_side_by_side(
    shipped: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "-n", "4", "--ddim-steps", "2"])
    stdout = capsys.readouterr().out
    assert code == 0 and str(out / "comparison.png") in stdout
    assert "fashion-mnist-1hq (qvunet-1hq)" in stdout and "fashion-mnist-unet (unet)" in stdout
    picture = np.asarray(Image.open(out / "comparison.png").convert("L"))
    # two 2x2 grids of 28x28 images (2 px padding), 3x upscaled, 12 px apart, under a 22 px label row
    side = 3 * (2 * 30 + 2)
    assert picture.shape == (22 + side + 12, 3 * 12 + 2 * side)
    left, right = picture[22 : 22 + side, 12 : 12 + side], picture[22 : 22 + side, 24 + side : 24 + 2 * side]
    assert left.std() > 0 and right.std() > 0 and not np.array_equal(left, right)
    capsys.readouterr()
    shutil.rmtree(shipped / "fashion-mnist-1hq")  # by default the demo draws what is shipped
    assert main(["demo", "--out", str(out), "-n", "4", "--ddim-steps", "2"]) == 0  # runs again in place
    stdout = capsys.readouterr().out
    assert "fashion-mnist-unet (unet)" in stdout and "fashion-mnist-1hq" not in stdout


def test_demo_without_shipped_models_says_what_to_run_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(pretrained, "SHIPPED_DIR", tmp_path / "nothing")
    assert main(["demo", "--out", str(tmp_path / "d")]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "none of fashion-mnist-1hq, fashion-mnist-unet is shipped" in err and "--train-minutes 5" in err
    assert (
        main(["demo", "--models", "fashion-mnist-1hq,nope", "--out", str(tmp_path / "d")]) == EXIT_USER_ERROR
    )
    assert "no pretrained model 'fashion-mnist-1hq', 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_training_demo_runs_again_in_a_fresh_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    tiny = ["training.batch_size=2", "sampling.steps=2", "sampling.num_images=2", "training.log_every=1"]
    sets = [arg for s in tiny for arg in ("--set", s)]
    for _ in range(2):
        assert main(["demo", "--out", str(out), "--train-steps", "2", *sets]) == 0
    runs = sorted(out.iterdir())
    assert len(runs) == 2 and all(r.name.startswith("train-") for r in runs)
    stdout = capsys.readouterr().out
    for run in runs:
        assert (run / "samples.png").is_file() and (run / "loss.png").is_file() and str(run) in stdout
        state, config = read_state(sorted((run / "checkpoints").iterdir())[-1])
        assert state.step == 2 and config["model"]["name"] == state.model_name == "qvunet-1hq"
        assert config["data"]["dataset"].startswith("embedded-")


def test_default_demo_on_the_shipped_weights_draws_dark_framed_garments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real shipped models, not stand-ins: each panel of the demo's picture is its model's images, and
    Fashion-MNIST garments sit on a black frame with a bright centre. Untrained weights give a grey field
    (frame 99-154, centre 101-187 in uint8, measured), the shipped ones frame ~26-38 and centre ~125-138
    at DDIM-10."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "-n", "8", "--ddim-steps", "10"]) == 0
    stdout = capsys.readouterr().out
    assert all(f"{name} (" in stdout for name in COMPARED_MODELS)
    picture = np.asarray(Image.open(out / "comparison.png").convert("L"))
    left = 12  # panels sit 12 px apart under a 22 px label row, each a 3x upscaled grid
    for name in COMPARED_MODELS:
        pipe, _ = load_pipeline(name, pretrained=True, sampler="ddim", steps=10, eta=1.0)  # the demo's eta
        images = pipe(8, seed=0)
        panel = make_grid(images.numpy()).repeat(3, axis=0).repeat(3, axis=1)
        shown = picture[22 : 22 + panel.shape[0], left : left + panel.shape[1]]
        assert np.array_equal(shown, panel), f"the demo's {name} panel is not {name}'s images"
        left += panel.shape[1] + 12
        images = images.float()
        frame = torch.cat([images[..., :2, :].flatten(1), images[..., -2:, :].flatten(1)], dim=1)
        centre = images[..., 8:20, 8:20]
        assert frame.mean() < 60 and centre.mean() - frame.mean() > 50, name
