"""``hqdm bench train-step / sample / fid``: ratios paired by round, the heap setting passed on, and each
measurement's own code run for real on a tiny model."""

import pytest

from hqdm.bench import compute, measure
from hqdm.cli import EXIT_USER_ERROR, main


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
