"""What a hybrid model would cost on a QPU: circuit executions per forward, per image, per training step.

A *circuit execution* is one run of one circuit with one set of angles (trained weights and the encoding
angles of one patch or one image), repeated ``shots`` times to estimate its ``<Z_i>``; every wire is read
from the same shots. The counts come from a real forward pass: each circuit layer reports how many
circuits it ran. Per image, DDIM-50 evaluates the model 50 times and DDPM-1000 a thousand times.

A training step on hardware needs gradients by the parameter-shift rule, with respect to the encoding
angles (the layer's input depends on trained parameters upstream) and to the circuit weights (unless
frozen): 2 extra executions per RX/RY/RZ angle, 4 per CRX/CRZ angle (their generator has three distinct
eigenvalues, so the two-term rule does not apply and PennyLane uses the four-term rule), none for CNOT.
All wires' ``<Z_i>`` come from the same shifted executions, so the count does not grow with the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hqdm.models.measurement import quantum_layers
from hqdm.models.registry import build_model, list_models
from hqdm.quantum.circuits import Circuit
from hqdm.quantum.measured_layer import MeasuredLayer

#: parameter-shift executions per angle of each gate type (two-term rule, four-term rule, no angle)
SHIFT_EXECUTIONS = {"RX": 2, "RY": 2, "RZ": 2, "CRX": 4, "CRZ": 4, "CNOT": 0}
SAMPLERS = {"DDIM-50": 50, "DDPM-1000": 1000}


def shift_executions(circuit: Circuit, *, weights_trained: bool) -> int:
    """Extra executions for the gradient of one execution of ``circuit`` (inputs always differentiated)."""
    return sum(
        SHIFT_EXECUTIONS[gate.name]
        for gate in circuit.executed_gates
        if gate.input is not None or (gate.weight is not None and weights_trained)
    )


@dataclass(frozen=True)
class QpuCost:
    """Circuit executions of one model for one image (batch 1); multiply by the batch size for a batch."""

    model: str
    circuit_layers: int
    per_forward: int
    per_training_sample: int  # forward executions plus their parameter-shift executions

    def per_image(self, model_evaluations: int) -> int:
        return self.per_forward * model_evaluations


def measure_qpu_cost(name: str, model: nn.Module, in_channels: int = 1, image_size: int = 28) -> QpuCost:
    """Count the circuits ``model`` runs in one forward of one image (forward hooks on its circuit layers)."""
    counts: dict[str, int] = {}
    layers = quantum_layers(model)

    def counter(layer_name: str, layer: MeasuredLayer):
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            # one <Z> per wire per circuit run
            counts[layer_name] = counts.get(layer_name, 0) + output.numel() // layer.definition.n_wires

        return hook

    handles = [layer.register_forward_hook(counter(n, layer)) for n, layer in layers]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, in_channels, image_size, image_size), torch.tensor([500]))
    finally:
        for handle in handles:
            handle.remove()
    training = 0
    for layer_name, layer in layers:
        trained = layer.weights.requires_grad
        shifts = shift_executions(layer.definition, weights_trained=trained)
        training += counts.get(layer_name, 0) * (1 + shifts)
    return QpuCost(name, len(layers), sum(counts.values()), training)


def hybrid_costs(semantics: str = "paper", in_channels: int = 1) -> list[QpuCost]:
    """:class:`QpuCost` of every registered model that has circuit layers."""
    costs = []
    for name in list_models():
        model = build_model(name, in_channels=in_channels, semantics=semantics)
        if quantum_layers(model):
            costs.append(measure_qpu_cost(name, model, in_channels))
    return costs


def format_qpu_cost_table(
    *, batch: int = 1, shots: int | None = None, semantics: str = "paper", in_channels: int = 1
) -> str:
    """Plain-text table of :func:`hybrid_costs`, per forward and training step at ``batch`` and per image;
    with ``shots``, the total number of shots too."""
    header = ["model", "circuit layers", f"forward (batch {batch})"]
    header += [f"{s} image" for s in SAMPLERS] + [f"train step (batch {batch})"]
    if shots is not None:
        header += [f"shots: {s} image" for s in SAMPLERS] + ["shots: train step"]
    rows = [header]
    for cost in hybrid_costs(semantics, in_channels):
        executions = [cost.per_forward * batch, *(cost.per_image(n) for n in SAMPLERS.values())]
        executions.append(cost.per_training_sample * batch)
        totals = [] if shots is None else [e * shots for e in executions[1:]]
        rows.append([cost.model, str(cost.circuit_layers), *(f"{n:,}" for n in (*executions, *totals))])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = (c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))
        return "  ".join([row[0].ljust(widths[0]), *cells])

    times_shots = "" if shots is None else f"; shots = executions x {shots}"
    notes = [
        f"circuit executions (one circuit, one set of angles){times_shots}.",
        f"{semantics} semantics, 28x28x{in_channels} images; training by parameter shift: 2 executions per "
        "RX/RY/RZ angle, 4 per CRX/CRZ angle, encoding angles included (docs/hardware.md).",
    ]
    return "\n".join([line(rows[0]), "  ".join("-" * w for w in widths), *map(line, rows[1:]), "", *notes])
