"""Benchmarks for real on tiny configurations, their raw JSON output, and the docs tables rendered from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hqdm.bench import measure
from hqdm.bench.results import Table, read_table, render_markdown, write_record
from hqdm.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS_WITH_TABLES = [ROOT / "docs" / "performance.md", ROOT / "docs" / "hardware.md"]


def _printed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("raw output: ")
    return lines[:-1]


def test_quantum_benchmark_runs_for_real_and_its_json_renders_what_it_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole harness, nothing replaced: a subprocess per measurement, PennyLane and hqdm circuits."""
    path = tmp_path / "quantum.json"
    argv = ["bench", "quantum", "--batches", "2", "--ansatz", "fqconv", "--pennylane-batch", "2"]
    argv += ["--seconds", "0", "--depths", "1", "--torchquantum-dir", "", "--json", str(path)]
    assert main(argv) == 0
    printed = _printed(capsys)
    record, quantum = read_table(path, "quantum")
    _, depth = read_table(path, "depth")
    assert quantum.lines() + depth.lines() == printed
    assert record["command"].startswith("hqdm bench quantum --batches 2 --ansatz fqconv")
    assert [(row["mode"], row["batch"]) for row in quantum.rows] == [("forward", 2), ("forward+backward", 2)]
    for row in quantum.rows:
        for engine in ("hqdm", "pennylane"):
            measured = row[engine]
            assert measured["seconds"] > 0 and measured["peak_mb"] >= 0
            assert measured["circuits_per_s"] == pytest.approx(2 / measured["seconds"])
    assert [row["layers"] for row in depth.rows] == [1] and depth.rows[0]["circuits_per_s"] > 0


class FakeMeasurements:
    """Distinct, deterministic numbers per measurement, so that a row mixed up with another shows."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, kind: str, extra_env: dict[str, str] | None = None, **kwargs: object) -> dict:
        if kind.endswith("measure_gemm"):
            return {"gflops": 100.0 if kwargs["dtype"] == "float32" else 400.0}
        self.calls += 1
        scale = {"plain": 3.0, "fp32": 2.0, "bf16": 1.0}[str(kwargs["path"])] + 0.1 * self.calls
        return {
            "seconds": scale, "peak_mb": 10 * scale, "gflop": 8.0, "params": 10, "quantum_params": 1,
            "evals_per_s": 100 / scale, "images_per_s": 10 / scale,
        }  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["train-step", "--models", "unet,qvunet-1hq", "--seconds", "0", "--rounds", "2"], "train-step"),
        (["sample", "--steps", "1"], "sample"),
        (["fid", "--seconds", "0"], "fid"),
    ],
)
def test_compute_benchmark_json_renders_what_it_printed(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    name: str,
) -> None:
    """The tables of the compute benchmarks, rebuilt from their JSON alone (measurements replaced: their
    code runs for real in test_bench_compute.py)."""
    measurements = FakeMeasurements()
    monkeypatch.setattr(measure, "run_in_subprocess", measurements)
    path = tmp_path / f"{name}.json"
    assert main(["bench", *argv, "--json", str(path)]) == 0
    printed = _printed(capsys)
    _, table = read_table(path, name)
    assert len(table.rows) == measurements.calls
    assert table.lines() == printed


def _record(table: Table) -> dict:
    return {
        "schema": 1, "command": "hqdm bench fid --json x.json", "started": "2026-12-01T05:50:00Z",
        "finished": "2026-12-01T05:55:00Z", "commit": "abc1234", "local_changes": False,
        "tables": {"fid": table.as_dict()},
    }  # fmt: skip


def test_render_markdown_replaces_marked_tables_and_reports_missing_files(tmp_path: Path) -> None:
    rows = [
        {"path": "plain", "seconds": 10.0, "images_per_s": 10.0, "peak_mb": 2000.0},
        {"path": "bf16", "seconds": 5.0, "images_per_s": 20.0, "peak_mb": 1000.0},
    ]
    table = Table("fid", {"machine": "test machine", "batch": 100, "keep_heap": True}, rows)
    write_record(tmp_path / "results" / "fid.json", _record(table))
    text = (
        "Intro.\n\n"
        "<!-- table from results/fid.json#fid; made by: hqdm bench fid --json results/fid.json -->\n"
        "| old | table |\n"
        "<!-- end of table -->\n\n"
        "<!-- table from results/quantum.json#quantum; made by: hqdm bench quantum -->\n"
        "| stale |\n"
        "<!-- end of table -->\n"
    )
    result = render_markdown(text, tmp_path)
    assert result.rendered == ["results/fid.json#fid"]
    assert result.missing == ["results/quantum.json#quantum: hqdm bench quantum"]
    assert "| old | table |" not in result.text and "| stale |" in result.text
    block = result.text.split("#fid; made by:")[1].split("<!-- end of table -->")[0]
    assert "`hqdm bench fid --json x.json`, started 2026-12-01T05:50:00Z at abc1234." in block
    assert "- FID feature benchmark, batch 100, 28x28 grey -> 299x299 (test machine)" in block
    assert "| bf16 | 20.0 | 500 | 2.00x | 1,000 |" in block
    assert render_markdown(result.text, tmp_path).text == result.text  # rendering again changes nothing


@pytest.mark.parametrize("doc", DOCS_WITH_TABLES, ids=lambda p: p.name)
def test_doc_tables_match_their_raw_output(doc: Path) -> None:
    """Every marked table of the doc is the rendering of its committed JSON; tables whose JSON is not
    measured yet are listed in the skip reason with the command that measures them."""
    text = doc.read_text(encoding="utf-8")
    result = render_markdown(text, ROOT)
    assert result.rendered, f"{doc.name} has no marked table"
    assert result.text == text, f"{doc.name} is out of date: run python benchmarks/render_tables.py"
    if result.missing:
        pytest.skip("awaiting a quiet-machine run: " + "; ".join(result.missing))
