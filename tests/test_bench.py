"""The benchmark's TorchQuantum peer: it runs hqdm's circuits, and is skipped cleanly when not installed."""

import sys
from pathlib import Path

import pytest
import torch

from hqdm import bench
from hqdm.cli import main
from hqdm.quantum import ANGLES_PER_LAYER, build_circuit, expvals

PEER_DIR = Path(__file__).resolve().parents[1] / bench.TORCHQUANTUM_DIR


@pytest.fixture(scope="module")
def tq():
    try:
        return bench.load_torchquantum(PEER_DIR)
    except bench.PeerUnavailable as error:
        pytest.skip(f"TorchQuantum peer not available ({error})")


@pytest.mark.parametrize("ansatz", ["hqconv", "fqconv"])
def test_torchquantum_peer_runs_the_same_circuit(tq, ansatz):
    g = torch.Generator().manual_seed(7)
    x = (torch.rand(8, 12, generator=g) * 2 - 1) * torch.pi
    w = (torch.rand(3, ANGLES_PER_LAYER[ansatz], generator=g) * 2 * torch.pi).requires_grad_()
    ours = expvals(ansatz, x, w)
    theirs = bench.to_torchquantum(tq, build_circuit(ansatz, 3))(x, w)
    assert theirs.shape == (8, 12)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)
    (grad_ours,) = torch.autograd.grad(ours.sum(), w)
    (grad_theirs,) = torch.autograd.grad(theirs.sum(), w)
    torch.testing.assert_close(grad_theirs, grad_ours, atol=1e-4, rtol=0)


def test_torchquantum_peer_leaves_no_placeholder_modules(tq):
    for name in bench._TQ_PLACEHOLDERS:
        module = sys.modules.get(name)
        assert module is None or getattr(module, "__doc__", "") != "placeholder set by hqdm.bench"


@pytest.fixture
def no_torchquantum(monkeypatch):
    """torchquantum cannot be imported from anywhere (None in sys.modules blocks the import)."""
    monkeypatch.setitem(sys.modules, "torchquantum", None)
    monkeypatch.setattr(sys, "path", list(sys.path))


def test_unavailable_torchquantum_names_the_install_script(tmp_path, no_torchquantum):
    with pytest.raises(bench.PeerUnavailable) as error:
        bench.load_torchquantum(tmp_path / "empty")
    message = str(error.value)
    assert "\n" not in message
    assert "TorchQuantum is not installed" in message
    assert bench.TORCHQUANTUM_INSTALL in message
    assert bench.torchquantum_info(str(tmp_path / "empty")) == {"unavailable": message}


def _fake_measurements(monkeypatch, info):
    calls = []

    def fake(kind, extra_env=None, **kwargs):
        calls.append((kind, kwargs))
        if kind == "torchquantum_info":
            return info(kwargs["peer_dir"])
        rate = {"hqdm": 1000.0, "pennylane": 10.0, "torchquantum": 100.0}[kwargs["engine"]]
        return {"seconds": kwargs["batch"] / rate, "circuits_per_s": rate, "peak_mb": 1.0}

    monkeypatch.setattr(bench, "_subprocess", fake)
    return calls


def test_quantum_benchmark_without_torchquantum_says_so_in_one_line(tmp_path, monkeypatch, no_torchquantum):
    calls = _fake_measurements(monkeypatch, bench.torchquantum_info)
    lines = []
    bench.quantum_benchmark(
        batches=(8,), ansatzes=("hqconv",), torchquantum_dir=str(tmp_path), seconds=0, echo=lines.append
    )
    notes = [line for line in lines if "TorchQuantum" in line]
    assert len(notes) == 1
    assert notes[0].startswith("# TorchQuantum is not installed")
    assert bench.TORCHQUANTUM_INSTALL in notes[0]
    assert not any(kwargs.get("engine") == "torchquantum" for _, kwargs in calls)
    assert len([line for line in lines if line.startswith("| hqconv")]) == 2


def test_quantum_benchmark_rows_with_torchquantum(monkeypatch):
    calls = _fake_measurements(monkeypatch, lambda peer_dir: {"version": "0.1.8"})
    lines = []
    rows = bench.quantum_benchmark(
        batches=(8, 32), ansatzes=("fqconv",), torchquantum_batch=16, seconds=0, echo=lines.append
    )
    assert "TorchQuantum 0.1.8" in lines[0]
    assert "| TorchQuantum circuits/s | ratio |" in lines[1]
    assert lines[1].count("|") == lines[2].count("|") == rows[0].line().count("|")
    assert [row.torchquantum_batch for row in rows] == [8, 16, 8, 16]
    assert "100 @ 8 | 10.0x" in rows[0].line()
    assert "100 @ 16 (scaled) | 10.0x" in rows[1].line()
    tq_batches = [kwargs["batch"] for _, kwargs in calls if kwargs.get("engine") == "torchquantum"]
    assert tq_batches == [8, 16, 8, 16]
    assert all(
        kwargs["peer_dir"].endswith(bench.TORCHQUANTUM_DIR)
        for _, kwargs in calls
        if kwargs.get("engine") == "torchquantum"
    )


def test_train_step_rounds_compare_each_model_with_its_own_rounds_unet(monkeypatch):
    """Round r's ratio uses round r's U-Net; the table reports medians and the range."""
    seconds = iter([2.0, 3.0, 4.0, 4.4, 3.0, 3.9])  # round by round: unet, qvunet-1hq
    calls = []

    def fake(kind, extra_env=None, **kwargs):
        calls.append(kwargs["model_name"])
        return {"seconds": next(seconds), "peak_mb": 5.0, "params": 10, "quantum_params": 1}

    monkeypatch.setattr(bench, "_subprocess", fake)
    lines = []
    results = bench.train_step_benchmark(("qvunet-1hq",), seconds=0, rounds=3, echo=lines.append)
    assert calls == ["unet", "qvunet-1hq"] * 3
    assert results["qvunet-1hq"]["ratios"] == [1.5, 1.1, 1.3]
    assert results["qvunet-1hq"]["ratio"] == 1.3
    assert results["qvunet-1hq"]["seconds"] == 3.9
    row = next(line for line in lines if line.startswith("| qvunet-1hq"))
    assert "| 1.30x | 1.10-1.50x |" in row
    assert lines[-4].count("|") == lines[-3].count("|") == row.count("|")  # header, rule and rows agree
    assert sum(line.startswith("# round") for line in lines) == 3


@pytest.mark.parametrize(("argv", "keep_heap"), [([], True), (["--glibc-heap-defaults"], False)])
def test_train_step_heap_setting_reaches_every_measurement(monkeypatch, capsys, argv, keep_heap):
    """Every training and sampling measurement runs as ``hqdm train`` runs, unless the flag asks for
    glibc's defaults, and the header says which."""
    seen = []

    def fake(kind, extra_env=None, **kwargs):
        seen.append((kind, kwargs["keep_heap"]))
        return {"seconds": 1.0, "peak_mb": 1.0, "params": 1, "quantum_params": 0, "images_per_s": 1.0}

    monkeypatch.setattr(bench, "_subprocess", fake)
    argv = ["bench", "train-step", "--models", "unet", "--seconds", "0", "--sample-steps", "2", *argv]
    assert main(argv) == 0
    assert seen == [("measure_train_step", keep_heap), ("measure_sampling", keep_heap)]
    assert ("glibc heap defaults" in capsys.readouterr().out.splitlines()[0]) is not keep_heap
