"""Finite-shot and noisy evaluation of a circuit's ``<Z_i>``: what a QPU would return.

A circuit is split into its independent parts (:func:`hqdm.quantum.components.components`). Noise channels
act on the wires of their gate only, so the parts stay independent with noise too, and the joint
distribution of all wires is the product of the parts' distributions: drawing each part's bitstrings from
its own distribution *is* drawing whole bitstrings of the full circuit. Each part's distribution comes from

* the batched engine's final state (no gate noise: :mod:`hqdm.quantum.engine.distribution`),
* its density matrix (gate noise, up to :data:`DENSITY_MAX_WIRES` wires, or ``method="density"``), or
* the mean of ``trajectories`` quantum-jump trajectories (gate noise on larger parts, or
  ``method="trajectories"``),

and ``<Z_i>`` is then read exactly or from ``shots`` sampled bitstrings (:mod:`hqdm.quantum.shots`). Read
exactly without gate noise, a bit-flip rate r only scales each ``<Z_i>`` by 1 - 2r, so that case needs no
distribution: the engine's ``<Z>`` are scaled.
Nothing here is differentiable: training uses the exact engine (:class:`NotDifferentiableError`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch

from hqdm.quantum.circuits import Circuit
from hqdm.quantum.components import Component, components
from hqdm.quantum.density import noisy_probabilities
from hqdm.quantum.engine import compile_circuit, output_distribution, simulate
from hqdm.quantum.engine.threads import map_chunks
from hqdm.quantum.errors import InvalidShotsError, MeasurementError, NotDifferentiableError
from hqdm.quantum.noise_model import NoiseModel
from hqdm.quantum.shots import exact_expvals, sampled_expvals
from hqdm.quantum.trajectories import expected_rows, trajectory_probabilities

METHODS = ("auto", "density", "trajectories")
#: largest independent part simulated by density matrix under ``method="auto"`` (4**8 entries a circuit)
DENSITY_MAX_WIRES = 8
DEFAULT_TRAJECTORIES = 32
#: complex entries (density matrices) simulated at once: 2 MiB of complex64, so that a chunk stays in a
#: core's cache through all its gates
CHUNK_ENTRIES = 1 << 18
#: the same for trajectories, counted at the rows a chunk is expected to end with (they multiply as
#: trajectories jump); larger, because each jump costs a few small ops whatever the chunk's size
TRAJECTORY_CHUNK_ENTRIES = 1 << 19


def _check_count(name: str, value: Any, error: type[MeasurementError]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise error(f"{name} must be a whole number of at least 1, got {value!r}")


@dataclass(frozen=True)
class Measurement:
    """How circuits are read out: ``shots`` bitstrings per circuit (None: exact ``<Z>``) under ``noise``
    (None: noiseless). ``method`` and ``trajectories`` choose how gate noise is simulated (module doc)."""

    shots: int | None = None
    noise: NoiseModel | None = None
    method: str = "auto"
    trajectories: int = DEFAULT_TRAJECTORIES

    def __post_init__(self) -> None:
        if self.shots is not None:
            _check_count("shots", self.shots, InvalidShotsError)
        if self.noise is not None and not isinstance(self.noise, NoiseModel):
            raise MeasurementError(f"noise must be a NoiseModel, got {type(self.noise).__name__}")
        if self.method not in METHODS:
            choices = ", ".join(METHODS)
            raise MeasurementError(f"unknown noise method {self.method!r}: choose one of {choices}")
        _check_count("trajectories", self.trajectories, MeasurementError)

    @property
    def is_exact(self) -> bool:
        """Exact noiseless ``<Z>``: what the fast engine computes."""
        return self.shots is None and (self.noise is None or self.noise == NoiseModel())

    def as_dict(self) -> dict[str, Any]:
        """For records: shots, the noise rates, and how noise was simulated."""
        noise = self.noise or NoiseModel()
        return {
            "shots": self.shots,
            "depolarizing": noise.depolarizing,
            "amplitude_damping": noise.amplitude_damping,
            "readout": noise.readout,
            "method": self.method,
            "trajectories": self.trajectories if noise.acts_on_gates else None,
        }


@functools.cache
def _parts(circuit: Circuit) -> tuple[tuple[Component, torch.Tensor, torch.Tensor], ...]:
    """Each independent part with its wires (copies, m) and weight indices (copies, L) as index tensors."""
    return tuple(
        (
            c,
            torch.tensor(c.wires, dtype=torch.long),
            torch.tensor(c.weights, dtype=torch.long).reshape(len(c.weights), c.circuit.n_weights),
        )
        for c in components(circuit)
    )


def _distribution(
    circuit: Circuit,
    inputs: torch.Tensor,
    weights: torch.Tensor,
    measurement: Measurement,
    generator: torch.Generator | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """(K * N, 2**n) output distribution of each (circuit, sample) of one connected circuit structure:
    inputs (K, N, n), weights (K, n_weights); rows in (circuit, sample) order."""
    noise, n = measurement.noise, circuit.n_wires
    if noise is None or not noise.acts_on_gates:
        # a component is connected and reads its weights 0..L-1 in order: its plan is one whole part
        plan = compile_circuit(circuit).parts[0].plan
        return output_distribution(plan, inputs, weights, dtype=dtype).flatten(0, 1)
    x = inputs.flatten(0, 1)
    w = weights[:, None].expand(-1, inputs.shape[1], -1).flatten(0, 1)
    if measurement.method == "density" or (measurement.method == "auto" and n <= DENSITY_MAX_WIRES):
        rows = max(1, CHUNK_ENTRIES >> (2 * n))

        def run(chunk: tuple[torch.Tensor, ...]) -> torch.Tensor:
            return noisy_probabilities(circuit, *chunk, noise, dtype)

        chunks = list(zip(x.split(rows), w.split(rows), strict=True))
    else:
        # one state per circuit until trajectories jump away from it (hqdm.quantum.trajectories)
        t = measurement.trajectories
        rows = max(1, int(TRAJECTORY_CHUNK_ENTRIES / ((1 << n) * expected_rows(circuit, noise, t))))
        # each chunk draws from a generator of its own, seeded from ``generator`` in chunk order, so that
        # chunks can run on parallel threads and draw what they would draw one after the other
        device = generator.device if generator is not None else x.device
        seeds = torch.randint(1 << 62, (-(-len(x) // rows),), generator=generator, device=device).tolist()

        def run(chunk: tuple[torch.Tensor, ...]) -> torch.Tensor:
            x, w, seed = chunk
            chunk_generator = torch.Generator(device).manual_seed(seed)
            return trajectory_probabilities(
                circuit, x, w, noise, dtype, trajectories=t, generator=chunk_generator
            )

        chunks = list(zip(x.split(rows), w.split(rows), seeds, strict=True))
    return torch.cat(map_chunks(run, chunks))


def measured_expvals(
    circuit: Circuit,
    inputs: torch.Tensor,
    weights: torch.Tensor,
    measurement: Measurement,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.complex64,
) -> torch.Tensor:
    """``<Z_i>`` as measured: inputs (K, N, n_wires) encoding angles, weights (K, n_weights) for K circuits
    of one structure (like :func:`hqdm.quantum.engine.simulate`); returns (K, N, n_wires), real.

    Random draws (shots, trajectories) come from ``generator``; the same generator state gives the same
    values. Raises :class:`NotDifferentiableError` when a gradient would be needed.
    """
    if torch.is_grad_enabled() and (inputs.requires_grad or weights.requires_grad):
        raise NotDifferentiableError(
            "finite-shot or noisy circuits have no gradient in hqdm: train on exact expectation values "
            "(no shots, no noise) and measure afterwards; see docs/hardware.md for parameter shift on a QPU"
        )
    if torch.is_autocast_enabled(inputs.device.type):  # probabilities and counts in full precision
        with torch.autocast(inputs.device.type, enabled=False):
            return measured_expvals(circuit, inputs, weights, measurement, generator=generator, dtype=dtype)
    k, n_samples = inputs.shape[0], inputs.shape[1]
    real = dtype.to_real()
    noise = measurement.noise
    readout = noise.readout if noise is not None else 0.0
    if measurement.shots is None and (noise is None or not noise.acts_on_gates):
        with torch.no_grad():
            return simulate(compile_circuit(circuit), inputs.to(real), weights.to(real), dtype=dtype) * (
                1 - 2 * readout
            )
    out = torch.empty(k, n_samples, circuit.n_wires, dtype=real, device=inputs.device)
    for part, wires, weight_index in _parts(circuit):
        copies, m = wires.shape
        wires = wires.to(inputs.device)
        # copies run as extra circuits: (K * copies, N, m) and (K * copies, L); rows (circuit, copy, sample)
        x = inputs[:, :, wires].permute(0, 2, 1, 3).reshape(k * copies, n_samples, m).to(real)
        w = weights[:, weight_index.to(weights.device)].to(real).flatten(0, 1)
        probs = _distribution(part.circuit, x, w, measurement, generator, dtype)
        if measurement.shots is None:
            z = exact_expvals(probs, m, readout)
        else:
            z = sampled_expvals(probs, m, measurement.shots, readout=readout, generator=generator)
        out[:, :, wires] = z.reshape(k, copies, n_samples, m).permute(0, 2, 1, 3)
    return out
