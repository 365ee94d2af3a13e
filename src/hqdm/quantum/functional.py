"""The public functional entry point: ``expvals(ansatz, inputs, weights)``, for a registered ansatz name
or any :class:`~hqdm.quantum.circuits.Circuit`."""

from __future__ import annotations

import torch

from hqdm.quantum.circuits import Circuit, build_circuit, check_ansatz
from hqdm.quantum.engine import compile_circuit, simulate
from hqdm.quantum.measurement import Measurement, measured_expvals
from hqdm.quantum.noise_model import NoiseModel

DTYPES = (torch.complex64, torch.complex128)


def check_angles(name: str, tensor: torch.Tensor) -> None:
    if not torch.is_tensor(tensor) or not tensor.dtype.is_floating_point:
        raise TypeError(f"{name} must be a real floating-point tensor of angles in radians")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains non-finite angles (NaN or inf): rotation angles must be finite")


def _check_inputs(inputs: torch.Tensor, n_wires: int, label: str) -> None:
    if inputs.dim() != 2 or inputs.shape[1] != n_wires:
        raise ValueError(
            f"inputs must have shape (batch, {n_wires}) for {label} ({n_wires} wires), "
            f"got {tuple(inputs.shape)}"
        )


def expvals(
    ansatz: str | Circuit,
    inputs: torch.Tensor,
    weights: torch.Tensor,
    *,
    semantics: str = "paper",
    dtype: torch.dtype = torch.complex64,
    shots: int | None = None,
    noise: NoiseModel | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``<Z_i>`` on every wire after RX encoding of ``inputs`` and the ansatz with ``weights``.

    Args:
        ansatz: a registered ansatz: ``"hqconv"`` or ``"fqconv"`` (12 wires) or ``"basic"``
            (BasicEntangler, 4 wires), or one added with :func:`~hqdm.quantum.circuits.register_ansatz`;
            or a :class:`~hqdm.quantum.circuits.Circuit`.
        inputs: (B, n_wires) encoding angles (RX; RY for a Circuit with ``encoding="RY"``), one row per
            circuit evaluation.
        weights: (layers, angles_per_layer) trainable angles in radians, in the gate order of
            ``docs/circuits.md`` (28 per HQConv layer, 24 per FQConv layer, 4 per BasicEntangler layer);
            for a Circuit, its ``n_weights`` angles in any shape.
        semantics: ``"paper"`` or ``"reference-code"`` (HQConv: only the B-block gates act, with angles 0-3);
            not used for a Circuit.
        dtype: simulation precision, ``torch.complex64`` (default) or ``torch.complex128``.
        shots: estimate each ``<Z_i>`` from this many bitstrings drawn jointly from the circuit's output
            distribution (None: exact), with random numbers from ``generator``.
        noise: hardware noise (:class:`~hqdm.quantum.noise_model.NoiseModel`) after every gate and at
            readout (None: noiseless). See :mod:`hqdm.quantum.measurement`.

    Returns:
        (B, n_wires) tensor of the matching real dtype, differentiable in inputs and weights when exact
        (with shots or noise a gradient request raises ``NotDifferentiableError``).
    """
    entry = None if isinstance(ansatz, Circuit) else check_ansatz(ansatz, semantics)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
    check_angles("inputs", inputs)
    check_angles("weights", weights)
    if entry is None:
        circuit = ansatz
        _check_inputs(inputs, circuit.n_wires, circuit.name or "the circuit")
        if weights.numel() != circuit.n_weights:
            raise ValueError(
                f"weights must hold the {circuit.n_weights} angles of {circuit.name or 'the circuit'}, "
                f"got shape {tuple(weights.shape)}"
            )
    else:
        _check_inputs(inputs, entry.wires, ansatz)
        per_layer = entry.angles_per_layer
        if weights.dim() != 2 or weights.shape[1] != per_layer or weights.shape[0] < 1:
            raise ValueError(
                f"weights must have shape (layers, {per_layer}) for {ansatz}, got {tuple(weights.shape)}"
            )
        circuit = build_circuit(ansatz, weights.shape[0], semantics=semantics)
    measurement = Measurement(shots=shots, noise=noise)
    if not measurement.is_exact:
        flat = weights.reshape(1, -1)
        return measured_expvals(circuit, inputs[None], flat, measurement, generator=generator, dtype=dtype)[0]
    return simulate(compile_circuit(circuit), inputs[None], weights.reshape(1, -1), dtype=dtype)[0]
