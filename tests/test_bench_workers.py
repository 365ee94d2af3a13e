"""``hqdm bench workers``: one process with every core against one process per core."""

import json

from hqdm.bench import measure, workers
from hqdm.cli import main


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


def test_bench_workers_command_writes_its_table(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(
        measure, "run_in_subprocesses", lambda kind, count, extra_env=None, **kw: [{"seconds": 1.0}] * count
    )
    out = tmp_path / "workers.json"
    assert main(["bench", "workers", "--models", "unet", "--workers", "2", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert [row["processes"] for row in record["tables"]["workers"]["rows"]] == [1, 2]
    assert "| unet | bf16 | 2 x " in capsys.readouterr().out
