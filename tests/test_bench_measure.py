"""The plumbing every benchmark shares: a measurement named ``module.function`` runs in fresh interpreters."""

from hqdm.bench import measure


def test_real_subprocess_returns_a_measurement():
    """The subprocess plumbing with a qualified measurement name, end to end (a small matrix product)."""
    result = measure.run_in_subprocess("compute.measure_gemm", dtype="float32", size=64, seconds=0)
    assert result["gflops"] > 0


def test_parallel_subprocesses_return_one_result_each():
    results = measure.run_in_subprocesses(
        "compute.measure_gemm", 2, {"OMP_NUM_THREADS": "1"}, dtype="float32", size=64, seconds=0
    )
    assert len(results) == 2 and all(r["gflops"] > 0 for r in results)
