"""``hqdm bench readout``: circuits/s of each hardware readout setting against the exact engine."""

import json

import pytest

from hqdm.bench import measure, readout
from hqdm.cli import main
from hqdm.quantum.errors import MeasurementError


def test_readout_benchmark_measures_the_exact_engine_first_and_divides_by_it(monkeypatch):
    rates = {"exact": 100_000.0, "shots-64": 20_000.0, "h2-2023": 1_000.0}
    calls = []

    def fake(kind, extra_env=None, **kwargs):
        calls.append((kind, kwargs["setting"], kwargs["batch"]))
        return {"seconds": 1.0, "circuits_per_s": rates[kwargs["setting"]], "peak_mb": 0.0}

    monkeypatch.setattr(measure, "run_in_subprocess", fake)
    lines = []
    table = readout.readout_benchmark(("h2-2023", "shots-64", "exact"), batch=8, seconds=0, echo=lines.append)
    assert [setting for _, setting, _ in calls] == ["exact", "h2-2023", "shots-64"]
    assert {kind for kind, _, _ in calls} == {"readout.measure_readout"}
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| readout")]
    assert rows == [
        "| exact | 100,000 | 1.0x | 0.0 min |",
        "| h2-2023 | 1,000 | 100.0x | 3.3 min |",
        "| shots-64 | 20,000 | 5.0x | 0.2 min |",
    ]
    assert table.lines() == lines


@pytest.mark.parametrize("setting", ["shot-64", "shots-", "sycamore", "noise"])
def test_an_unknown_setting_is_named_before_anything_is_timed(monkeypatch, setting):
    monkeypatch.setattr(measure, "run_in_subprocess", lambda *a, **k: pytest.fail("timed an unknown setting"))
    with pytest.raises(MeasurementError, match=setting):
        readout.readout_benchmark(("exact", setting), seconds=0, echo=lambda _: None)


@pytest.mark.parametrize("setting", readout.DEFAULT_SETTINGS)
def test_every_default_setting_runs_on_real_circuits(setting):
    result = readout.measure_readout(setting, batch=4, seconds=0)
    assert result["circuits_per_s"] > 0 and result["seconds"] > 0


def test_bench_readout_command_writes_its_table(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(
        measure,
        "run_in_subprocess",
        lambda kind, extra_env=None, **kw: {"seconds": 1.0, "circuits_per_s": 10.0, "peak_mb": 0.0},
    )
    out = tmp_path / "readout.json"
    assert main(["bench", "readout", "--settings", "exact,shots-256", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert [row["setting"] for row in record["tables"]["readout"]["rows"]] == ["exact", "shots-256"]
    assert "| shots-256 | 10 | 1.0x |" in capsys.readouterr().out
