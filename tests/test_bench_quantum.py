"""``hqdm bench quantum`` and its TorchQuantum peer, which runs hqdm's circuits and is skipped cleanly when
not installed.

The peer tests run wherever ``bash scripts/install_torchquantum_peer.sh`` can install the peer (pip, about
35 MB into the git-ignored .peers/, the venv untouched). With ``HQDM_REQUIRE_PEERS=1`` (set by .ci/run) a
missing peer fails them instead of skipping them.
"""

import os
import sys
from pathlib import Path

import pytest
import torch

from hqdm.bench import measure, quantum
from hqdm.quantum import ANGLES_PER_LAYER, build_circuit, expvals

PEER_DIR = Path(__file__).resolve().parents[1] / quantum.TORCHQUANTUM_DIR


@pytest.fixture(scope="module")
def peer():
    """benchmarks/peers/torchquantum_peer.py, the code that loads and drives TorchQuantum."""
    return quantum.torchquantum_peer()


@pytest.fixture(scope="module")
def tq(peer):
    try:
        return peer.load_torchquantum(PEER_DIR)
    except quantum.PeerUnavailable as error:
        if os.environ.get("HQDM_REQUIRE_PEERS") == "1":
            pytest.fail(f"HQDM_REQUIRE_PEERS=1, but {error}")
        pytest.skip(f"{error} (pip, about 35 MB in {quantum.TORCHQUANTUM_DIR}; the venv is not touched)")


@pytest.mark.parametrize("ansatz", ["hqconv", "fqconv"])
def test_torchquantum_peer_runs_the_same_circuit(peer, tq, ansatz):
    g = torch.Generator().manual_seed(7)
    x = (torch.rand(8, 12, generator=g) * 2 - 1) * torch.pi
    w = (torch.rand(3, ANGLES_PER_LAYER[ansatz], generator=g) * 2 * torch.pi).requires_grad_()
    ours = expvals(ansatz, x, w)
    theirs = peer.to_torchquantum(tq, build_circuit(ansatz, 3))(x, w)
    assert theirs.shape == (8, 12)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)
    (grad_ours,) = torch.autograd.grad(ours.sum(), w)
    (grad_theirs,) = torch.autograd.grad(theirs.sum(), w)
    torch.testing.assert_close(grad_theirs, grad_ours, atol=1e-4, rtol=0)


def test_torchquantum_peer_leaves_no_placeholder_modules(peer, tq):
    for name in peer.PLACEHOLDERS:
        module = sys.modules.get(name)
        assert module is None or getattr(module, "__doc__", "") != peer.PLACEHOLDER_DOC


@pytest.fixture
def no_torchquantum(monkeypatch):
    """torchquantum cannot be imported from anywhere (None in sys.modules blocks the import)."""
    monkeypatch.setitem(sys.modules, "torchquantum", None)
    monkeypatch.setattr(sys, "path", list(sys.path))


def test_unavailable_torchquantum_names_the_install_script(peer, tmp_path, no_torchquantum):
    with pytest.raises(quantum.PeerUnavailable) as error:
        peer.load_torchquantum(tmp_path / "empty")
    message = str(error.value)
    assert "\n" not in message
    assert "TorchQuantum is not installed" in message
    assert quantum.TORCHQUANTUM_INSTALL in message
    assert quantum.torchquantum_info(str(tmp_path / "empty")) == {"unavailable": message}


def test_missing_peer_code_makes_the_peer_unavailable(tmp_path, monkeypatch):
    """An installed hqdm has no benchmarks/peers: TorchQuantum is reported unavailable, in one line."""
    monkeypatch.setattr(quantum, "PEERS_DIR", tmp_path)
    monkeypatch.delitem(sys.modules, quantum._PEER_MODULE, raising=False)
    with pytest.raises(quantum.PeerUnavailable, match="source checkout") as error:
        quantum.torchquantum_peer()
    assert "\n" not in str(error.value)
    assert quantum.torchquantum_info(str(tmp_path)) == {"unavailable": str(error.value)}


def _fake_measurements(monkeypatch, info):
    calls = []

    def fake(kind, extra_env=None, **kwargs):
        calls.append((kind, kwargs))
        if kind == "quantum.torchquantum_info":
            return info(kwargs["peer_dir"])
        rate = {"hqdm": 1000.0, "pennylane": 10.0, "torchquantum": 100.0}[kwargs["engine"]]
        return {"seconds": kwargs["batch"] / rate, "circuits_per_s": rate, "peak_mb": 1.0}

    monkeypatch.setattr(measure, "run_in_subprocess", fake)
    return calls


def test_quantum_benchmark_without_torchquantum_says_so_in_one_line(tmp_path, monkeypatch, no_torchquantum):
    calls = _fake_measurements(monkeypatch, quantum.torchquantum_info)
    lines = []
    quantum.quantum_benchmark(
        batches=(8,), ansatzes=("hqconv",), torchquantum_dir=str(tmp_path), seconds=0, echo=lines.append
    )
    notes = [line for line in lines if "TorchQuantum" in line]
    assert len(notes) == 1
    assert notes[0].startswith("# TorchQuantum is not installed")
    assert quantum.TORCHQUANTUM_INSTALL in notes[0]
    assert not any(kwargs.get("engine") == "torchquantum" for _, kwargs in calls)
    assert len([line for line in lines if line.startswith("| hqconv")]) == 2


def test_quantum_benchmark_rows_with_torchquantum(monkeypatch):
    calls = _fake_measurements(monkeypatch, lambda peer_dir: {"version": "0.1.8"})
    lines = []
    table = quantum.quantum_benchmark(
        batches=(8, 32), ansatzes=("fqconv",), torchquantum_batch=16, seconds=0, echo=lines.append
    )
    rows = [quantum.QuantumRow(**row) for row in table.rows]
    assert "TorchQuantum 0.1.8" in lines[0]
    assert "| TorchQuantum circuits/s | ratio |" in lines[1]
    assert lines[1].count("|") == lines[2].count("|") == rows[0].line().count("|")
    assert [row.torchquantum_batch for row in rows] == [8, 16, 8, 16]
    assert "100 @ 8 | 10.0x" in rows[0].line()
    assert "100 @ 16 (scaled) | 10.0x" in rows[1].line()
    tq_batches = [kwargs["batch"] for _, kwargs in calls if kwargs.get("engine") == "torchquantum"]
    assert tq_batches == [8, 16, 8, 16]
    assert all(
        kwargs["peer_dir"].endswith(quantum.TORCHQUANTUM_DIR)
        for _, kwargs in calls
        if kwargs.get("engine") == "torchquantum"
    )
