"""What reading a circuit out like a QPU costs in simulation: circuits per second of each readout setting of
``hqdm hardware measure`` on the QVU-Nets' circuit (the 12-qubit paper HQConv, 3 layers), against the exact
engine measured in the same run.

Settings: ``exact`` (the fast engine, what training and the exact cells use), ``shots-N`` (the full output
distribution, then N bitstrings per circuit) and a published noise level by name (gate noise by
quantum-jump trajectories, :data:`~hqdm.quantum.measurement.DEFAULT_TRAJECTORIES` per circuit, read out
exactly). Each setting is timed in a fresh subprocess (:mod:`hqdm.bench.measure`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hqdm.bench import measure
from hqdm.bench.results import Table
from hqdm.models.hybrid import CIRCUIT_LAYERS
from hqdm.quantum import ANGLES_PER_LAYER, build_circuit, expvals
from hqdm.quantum.errors import MeasurementError
from hqdm.quantum.measurement import DEFAULT_TRAJECTORIES, Measurement, measured_expvals
from hqdm.quantum.noise_levels import NOISE_LEVELS

__all__ = ["DEFAULT_SETTINGS", "format_readout", "measure_readout", "readout_benchmark"]

DEFAULT_SETTINGS = ("exact", "shots-1024", *NOISE_LEVELS)
#: circuits in one noise cell of the study's 1HQConv model: 1,000 images x 50 DDIM steps x 4 circuits
CELL_CIRCUITS = 200_000


def _measurement(setting: str) -> Measurement | None:
    """None for the exact engine, else how ``setting`` reads the circuits out; unknown names are errors."""
    if setting == "exact":
        return None
    if setting.startswith("shots-") and setting[len("shots-") :].isdigit():
        return Measurement(shots=int(setting[len("shots-") :]))
    if setting in NOISE_LEVELS:
        return Measurement(noise=NOISE_LEVELS[setting])
    raise MeasurementError(
        f"unknown readout setting {setting!r}: use exact, shots-N or one of {', '.join(NOISE_LEVELS)}"
    )


def _readout_fn(setting: str, batch: int) -> Callable[[], None]:
    measurement = _measurement(setting)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, 12, generator=g) * 2 - 1) * torch.pi
    w = torch.rand(CIRCUIT_LAYERS, ANGLES_PER_LAYER["hqconv"], generator=g) * 2 * torch.pi
    if measurement is None:
        return lambda: expvals("hqconv", x, w)
    circuit = build_circuit("hqconv", CIRCUIT_LAYERS)
    return lambda: measured_expvals(circuit, x[None], w.reshape(1, -1), measurement, generator=g)


def measure_readout(setting: str, batch: int, seconds: float) -> dict:
    with torch.no_grad():
        seconds_per_call, peak = measure.time_call(_readout_fn(setting, batch), seconds, 2)
    return {"seconds": seconds_per_call, "circuits_per_s": batch / seconds_per_call, "peak_mb": peak}


def readout_benchmark(
    settings: tuple[str, ...] = DEFAULT_SETTINGS,
    batch: int = 256,
    seconds: float = 3.0,
    echo: Callable[[str], None] = print,
) -> Table:
    """Every setting on ``batch`` circuits; the exact engine is always measured first, as the peer."""
    for setting in settings:
        _measurement(setting)  # a typo fails before anything is timed
    info = {
        "machine": measure.machine_line(),
        "batch": batch,
        "layers": CIRCUIT_LAYERS,
        "trajectories": DEFAULT_TRAJECTORIES,
        "threads": torch.get_num_threads(),
    }
    table = Table("readout", info)
    echo(_head(info))
    for setting in ("exact", *(s for s in settings if s != "exact")):
        result = measure.run_in_subprocess(
            "readout.measure_readout", setting=setting, batch=batch, seconds=seconds
        )
        table.rows.append({"setting": setting, **result})
    for line in _table(table.rows):
        echo(line)
    return table


def _head(info: dict) -> str:
    return (
        f"# readout benchmark: 12-qubit HQConv ({info['layers']} layers), {info['batch']} circuits a call, "
        f"noise by {info['trajectories']} trajectories a circuit ({info['machine']})"
    )


def _table(rows: list[dict]) -> list[str]:
    exact = next(row["circuits_per_s"] for row in rows if row["setting"] == "exact")
    lines = [
        f"| readout | circuits/s | slower than the exact engine | {CELL_CIRCUITS:,} circuits (one cell's) |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        rate = row["circuits_per_s"]
        minutes = CELL_CIRCUITS / rate / 60
        lines.append(f"| {row['setting']} | {rate:,.0f} | {exact / rate:,.1f}x | {minutes:,.1f} min |")
    return lines


def format_readout(info: dict, rows: list[dict]) -> list[str]:
    return [_head(info), *_table(rows)]
