"""``hqdm bench floor``: a training step's self time by op class, and the step if only the matrix work
took time."""

import json

import pytest

from hqdm.bench import measure
from hqdm.bench.floor import OP_CLASSES, measure_step_profile
from hqdm.bench.results import read_table
from hqdm.cli import main

PROFILE = {  # one step: 1.0 s unprofiled; the profiler's self times add up to 1.0 s too
    "ops": {
        "aten::mkldnn_convolution": [0.2, 4],
        "aten::bmm": [0.2, 2],
        "aten::var_mean": [0.1, 2],
        "aten::threshold": [0.5, 10],
    },
    "flops": {"aten.convolution": 4.0, "aten.bmm": 4.0},
}


def _fake(kind, extra_env=None, **kwargs):
    if kind.endswith("measure_gemm"):
        return {"gflops": 100.0 if kwargs["dtype"] == "float32" else 400.0}
    if kind.endswith("measure_step_profile"):
        return PROFILE
    return {"seconds": 2.0 if kwargs["path"] == "plain" else 1.0, "gflop": 10.0}


def test_floor_is_the_step_with_only_the_matrix_work_left(monkeypatch, tmp_path, capsys):
    """40% of the step is matrix work: 0.4 s/step, 5x over the 2.0 s plain step, 10 GFLOP in 0.4 s = 6.2%
    of 400 GFLOP/s; the matrix kernels' own 8 GFLOP in 0.4 s = 20 GFLOP/s. Two models make one table; the
    JSON renders what was printed."""
    monkeypatch.setattr(measure, "run_in_subprocess", _fake)
    out = tmp_path / "floor.json"
    assert main(["bench", "floor", "--models", "unet,qvunet-1hq", "--seconds", "0", "--json", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert "unet/bf16: 1.000 s/step, plain 2.000 s/step (2.00x over plain)" in printed[1]
    assert "(every other op free): 0.400 s/step = 5.00x over plain, 6.2% of the bf16 mm rate" in printed[2]
    assert "the matrix work itself runs at 20 GFLOP/s (5.0%)" in printed[2]
    assert "aten::threshold 50.0% (10 calls)" in printed[3]  # the largest op outside every class
    assert "| unet | bf16 | convolution forward | 20.0% | 0.200 | 4.0 | 20 | 5.0% |" in printed
    assert "| unet | bf16 | normalisation | 10.0% | 0.100 | 0.0 | - | - |" in printed
    assert "| qvunet-1hq | bf16 | normalisation | 10.0% | 0.100 | 0.0 | - | - |" in printed
    assert sum(line.startswith("| model |") for line in printed) == 1  # one table for both models
    record = json.loads(out.read_text())
    assert record["command"].startswith("hqdm bench floor")
    _, table = read_table(out, "floor")
    assert table.lines() == [line for line in printed if not line.startswith("raw output")]


def test_profile_of_a_real_step_puts_every_counted_flop_in_a_matrix_class():
    """A tiny U-Net step (no fake): the ops the FLOP counter sees are all named by a class, so no work
    falls outside the matrix floor's numerator; the profiled ops include the convolutions."""
    profile = measure_step_profile("unet", batch=2, path="fp32", steps=1, keep_heap=False)
    counted = {op for _, flop_ops in OP_CLASSES.values() for op in flop_ops}
    assert profile["flops"] and set(profile["flops"]) <= counted
    assert "aten::convolution_backward" in profile["ops"]
    assert all(seconds >= 0 and calls > 0 for seconds, calls in profile["ops"].values())


def test_floor_rejects_the_plain_path(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "floor", "--path", "plain"])
    assert "invalid choice: 'plain'" in capsys.readouterr().err
