"""``hqdm eps-error``: the noise-prediction error per timestep of a checkpoint's EMA and online weights.

The U-Net with a zero final convolution and bias c predicts the constant c whatever it sees, so its error
against standard-normal noise has mean offset c and mean square 1 + c² (up to the sampling error of a few
thousand draws): known answers that do not depend on how the implementation draws its noise.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import write_checkpoint
from hqdm.cli import EXIT_USER_ERROR, main
from hqdm.experiments.eps_error import checkpoint_eps_errors
from hqdm.models import build_model


def constant_unet(c: float) -> nn.Module:
    model = build_model("unet")
    with torch.no_grad():
        model.final_conv.weight.zero_()
        model.final_conv.bias.fill_(c)
    return model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    online, ema = constant_unet(-0.25), constant_unet(0.5)
    return write_checkpoint(tmp_path_factory.mktemp("run"), online, ema=ema, dataset="embedded-fashion-mnist")


def test_ema_and_online_weights_get_their_known_offsets_and_errors(checkpoint: Path) -> None:
    x0 = torch.rand(8, 1, 28, 28) * 2 - 1
    ema, online = checkpoint_eps_errors(checkpoint, x0, timesteps=(0, 5, 9))
    assert (ema.weights, online.weights) == ("ema", "online") and ema.timesteps == (0, 5, 9)
    # 8 x 784 standard-normal draws per timestep: their mean is within ~0.05 of 0 (4 standard errors)
    assert ema.offset == pytest.approx((0.5,) * 3, abs=0.05)
    assert online.offset == pytest.approx((-0.25,) * 3, abs=0.05)
    assert ema.mse == pytest.approx((1.25,) * 3, abs=0.1)
    assert online.mse == pytest.approx((1.0625,) * 3, abs=0.1)
    # a kept epoch without online weights reports its EMA weights alone
    kept = checkpoint.parent / "ema-only"
    kept.mkdir()
    for name in ("ema.safetensors", "state.json", "config.json"):
        (kept / name).write_bytes((checkpoint / name).read_bytes())
    assert [row.weights for row in checkpoint_eps_errors(kept, x0, timesteps=(9,))] == ["ema"]


def test_command_prints_one_row_per_weights(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eps-error", str(checkpoint), "--split", "train", "-n", "8", "--timesteps", "0,9"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| checkpoint | weights | t=0 | t=9 |" in out
    rows = [line for line in out.splitlines() if line.startswith(f"| {checkpoint} |")]
    assert [row.split(" | ")[1] for row in rows] == ["ema", "online"]
    assert all(cell.split(" / ")[1].startswith("+0.") for cell in rows[0].split(" | ")[2:])
    assert main([*argv[:-1], "0,10"]) == EXIT_USER_ERROR  # the checkpoint's schedule has 10 steps
    assert "--timesteps: [10] outside 0..9" in capsys.readouterr().err
