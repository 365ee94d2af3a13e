"""The benchmark's TorchQuantum peer: it runs hqdm's circuits, and is skipped cleanly when not installed.

The peer tests run wherever ``bash scripts/install_torchquantum_peer.sh`` can install the peer (pip, about
35 MB into the git-ignored .peers/, the venv untouched). With ``HQDM_REQUIRE_PEERS=1`` (set by .ci/run) a
missing peer fails them instead of skipping them.
"""

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from hqdm.bench import compute, measure, quantum, workers
from hqdm.cli import EXIT_USER_ERROR, main
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


def _fake_step(seconds):
    def fake(kind, extra_env=None, **kwargs):
        if kind.endswith("measure_gemm"):
            return {"gflops": 100.0 if kwargs["dtype"] == "float32" else 400.0}
        return {
            "seconds": next(seconds), "peak_mb": 5.0, "gflop": 8.0, "params": 10, "quantum_params": 1,
            "model": kwargs["model_name"], "path": kwargs["path"],
        }  # fmt: skip

    return fake


def test_train_step_ratios_pair_each_measurement_with_its_own_round(monkeypatch):
    """Round r's speed-up uses round r's plain path of the same model, its ratio round r's U-Net on the same
    path; the table gives medians and ranges, GFLOP/s and the fraction of the bf16 matrix-product rate."""
    # round by round: unet plain, unet bf16, qvunet-1hq plain, qvunet-1hq bf16
    seconds = iter([2.0, 0.5, 3.0, 1.0, 2.2, 0.4, 3.3, 0.8, 1.8, 0.5, 2.7, 0.6])
    monkeypatch.setattr(measure, "run_in_subprocess", _fake_step(seconds))
    lines = []
    table = compute.train_step_benchmark(
        ("qvunet-1hq",), ("plain", "bf16"), seconds=0, rounds=3, echo=lines.append
    )
    hybrid = compute.summarize_train_step(table.rows)["qvunet-1hq", "bf16"]
    assert hybrid["speedup"] == pytest.approx([3.0, 4.125, 4.5])
    assert hybrid["vs_unet"] == pytest.approx([2.0, 2.0, 1.2])
    assert hybrid["seconds"] == 0.8 and hybrid["gflops"] == 10.0
    row = next(line for line in lines if line.startswith("| qvunet-1hq") and "| bf16 |" in line)
    assert "| 4.12x (3.00-4.50) | 2.00x (1.20-2.00) |" in row
    assert "| 10 | 2% |" in row  # 8 GFLOP in 0.8 s, of the 400 GFLOP/s bf16 rate
    assert "bf16 400 GFLOP/s" in lines[1]
    header = next(i for i, line in enumerate(lines) if line.startswith("| model"))
    assert lines[header].count("|") == lines[header + 1].count("|") == row.count("|")
    assert sum(line.startswith("# round") for line in lines) == 3


@pytest.mark.parametrize(("argv", "keep_heap"), [([], True), (["--glibc-heap-defaults"], False)])
def test_compute_benchmarks_pass_the_heap_setting_to_every_measurement(monkeypatch, capsys, argv, keep_heap):
    """Every measurement runs as ``hqdm train`` runs, unless the flag asks for glibc's defaults."""
    seen = []

    def fake(kind, extra_env=None, **kwargs):
        seen.append((kind, kwargs.get("keep_heap")))
        return {
            "seconds": 1.0, "peak_mb": 1.0, "gflop": 1.0, "params": 1, "quantum_params": 0, "gflops": 1.0,
            "evals_per_s": 1.0, "images_per_s": 1.0,
        }  # fmt: skip

    monkeypatch.setattr(measure, "run_in_subprocess", fake)
    assert main(["bench", "train-step", "--models", "unet", "--paths", "fp32", "--seconds", "0", *argv]) == 0
    assert main(["bench", "sample", "--paths", "fp32", "--steps", "1", *argv]) == 0
    assert main(["bench", "fid", "--paths", "plain,bf16", "--seconds", "0", *argv]) == 0
    measured = [(kind, heap) for kind, heap in seen if not kind.endswith("measure_gemm")]
    assert [kind for kind, _ in measured] == [
        "compute.measure_train_step",
        "compute.measure_sampler",
        "compute.measure_sampler",
        "compute.measure_inception",
        "compute.measure_inception",
    ]
    assert all(heap is keep_heap for _, heap in measured)
    assert ("glibc heap defaults" in capsys.readouterr().out.splitlines()[0]) is not keep_heap


def test_sample_benchmark_measures_each_batch_with_the_asked_threads(monkeypatch, capsys):
    """``--batch 64,128`` measures every (sampler, batch, path); the speed-up is over plain at the same
    batch, and ``--threads 1`` reaches the measuring process's environment."""
    seen = []

    def fake(kind, extra_env=None, **kwargs):
        seen.append((kwargs["sampler"], kwargs["batch"], kwargs["path"], extra_env))
        rate = kwargs["batch"] * (2.0 if kwargs["path"] == "bf16" else 1.0)
        return {"seconds": 1.0, "peak_mb": 1.0, "evals_per_s": rate}

    monkeypatch.setattr(measure, "run_in_subprocess", fake)
    argv = ["bench", "sample", "--paths", "plain,bf16", "--batch", "64,128", "--threads", "1", "--steps", "1"]
    assert main(argv) == 0
    assert [(s, b, p) for s, b, p, _ in seen] == [
        (s, b, p) for s in ("ddim", "ddpm") for b in (64, 128) for p in ("plain", "bf16")
    ]
    assert all(env == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} for *_, env in seen)
    out = capsys.readouterr().out
    assert "| unet | ddim | bf16 | 128 | 256 | 2.6 | 2.00x |" in out  # bf16 at 128 over plain at 128
    assert "batch 64, 128, 1 evaluations per run, 1 thread(s) per measurement" in out
    assert main(["bench", "sample", "--batch", "64,x"]) == EXIT_USER_ERROR


def test_unknown_path_is_a_named_usage_error(capsys):
    assert main(["bench", "train-step", "--paths", "fp16"]) == 2
    assert "--paths: unknown or empty ['fp16']" in capsys.readouterr().err


def test_train_step_measurement_runs_for_real_on_every_path():
    """The measuring code itself (no fake): a tiny step of the U-Net on each path, with its FLOP count."""
    results = {
        path: compute.measure_train_step("unet", batch=2, seconds=0, path=path, keep_heap=False)
        for path in compute.PATHS
    }
    assert all(r["seconds"] > 0 and r["params"] == 483_321 for r in results.values())
    assert {path: r["precision"] for path, r in results.items()} == {
        "plain": "fp32",
        "fp32": "fp32",
        "bf16": "bf16",
    }
    # the regrouped linear attention does less work than the plain one; bf16 counts the same products
    assert results["fp32"]["gflop"] < results["plain"]["gflop"]
    assert results["bf16"]["gflop"] == results["fp32"]["gflop"]


def test_inception_measurement_runs_for_real_on_the_plain_path():
    """The old NCHW float32 forward, as ``bench fid`` measures it (the FID network file is installed)."""
    result = compute.measure_inception(batch=2, path="plain", seconds=0, keep_heap=False)
    assert result["seconds"] > 0 and result["images_per_s"] == pytest.approx(2 / result["seconds"])


def test_sampler_measurement_runs_for_real():
    result = compute.measure_sampler("unet", "ddpm", batch=2, steps=3, path="bf16", keep_heap=False)
    # one timed call draws the whole batch through every step: batch x steps model evaluations
    assert result["seconds"] > 0 and result["evals_per_s"] == pytest.approx(2 * 3 / result["seconds"])


def test_real_subprocess_returns_a_measurement():
    """The subprocess plumbing with a qualified measurement name, end to end (a small matrix product)."""
    assert (
        measure.run_in_subprocess("compute.measure_gemm", dtype="float32", size=64, seconds=0)["gflops"] > 0
    )


def test_workers_benchmark_compares_total_steps_per_second_of_the_two_layouts(monkeypatch):
    """One process with every core, then one process per core at the same time; the ratio is the sum of
    the parallel processes' steps/s over the single process's."""
    calls = []

    def fake(kind, count, extra_env=None, **kwargs):
        calls.append((kind, count, extra_env["OMP_NUM_THREADS"], kwargs["model_name"]))
        return [{"seconds": 0.7}] if count == 1 else [{"seconds": 0.9}, {"seconds": 1.0}]

    monkeypatch.setattr(measure, "run_in_subprocesses", fake)
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 2)
    lines = []
    table = workers.workers_benchmark(("unet",), ("bf16",), seconds=0, echo=lines.append)
    assert calls == [
        ("compute.measure_train_step", 1, "2", "unet"),
        ("compute.measure_train_step", 2, "1", "unet"),
    ]
    rows = [line for line in lines if line.startswith("| unet")]
    assert rows[0] == "| unet | bf16 | 1 x 2 threads | 0.700 | 1.43 | 183 | 1.00x |"
    assert rows[1] == "| unet | bf16 | 2 x 1 thread | 0.950 | 2.11 | 270 | 1.48x |"
    assert table.lines() == lines


def test_parallel_subprocesses_return_one_result_each():
    results = measure.run_in_subprocesses(
        "compute.measure_gemm", 2, {"OMP_NUM_THREADS": "1"}, dtype="float32", size=64, seconds=0
    )
    assert len(results) == 2 and all(r["gflops"] > 0 for r in results)


def test_bench_workers_command_writes_its_table(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(
        measure, "run_in_subprocesses", lambda kind, count, extra_env=None, **kw: [{"seconds": 1.0}] * count
    )
    out = tmp_path / "workers.json"
    assert main(["bench", "workers", "--models", "unet", "--workers", "2", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert [row["processes"] for row in record["tables"]["workers"]["rows"]] == [1, 2]
    assert "| unet | bf16 | 2 x " in capsys.readouterr().out
