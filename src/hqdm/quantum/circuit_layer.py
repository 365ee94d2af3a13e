"""The core of every circuit layer: a circuit, its compiled plan, its angles, and the engine call.

The patch layers (:class:`~hqdm.quantum.layers.PatchCircuit`, and through it the quanvolution), the lite
U-Net's bottleneck circuit and the quantum noise source all own one circuit and call the engine; they
differ only in how their inputs reach the wires and how their parameters become angles. Owning the circuit
here keeps one place that compiles the plan and chooses between the exact engine and a measured readout
(:class:`~hqdm.quantum.measured_layer.MeasuredLayer`).
"""

from __future__ import annotations

import torch
from torch import nn

from hqdm.quantum.circuits import Circuit
from hqdm.quantum.engine import compile_circuit, simulate
from hqdm.quantum.measured_layer import MeasuredLayer


class CircuitLayer(MeasuredLayer, nn.Module):
    """Owns ``definition`` (a :class:`~hqdm.quantum.circuits.Circuit`), its compiled ``plan`` and the
    trainable parameter ``weights``; :meth:`expvals` runs the layer's circuits on encoding angles.

    ``weights`` holds the angles of one or more circuits of the same structure, in any shape whose last
    dimensions flatten to ``n_weights`` per circuit; subclasses that scale or reorder them override
    :meth:`circuit_angles`. The parameter's name is part of the models' state dicts (pretrained weights).
    """

    def __init__(
        self, circuit: Circuit, weights: torch.Tensor, *, sim_dtype: torch.dtype = torch.complex64
    ) -> None:
        super().__init__()
        self.definition = circuit
        self.plan = compile_circuit(circuit)
        self.sim_dtype = sim_dtype
        self.weights = nn.Parameter(weights)
        self.measure(None)

    def circuit_angles(self) -> torch.Tensor:
        """(K, n_weights): the angles in radians each of the layer's K circuits runs with."""
        return self.weights.reshape(-1, self.definition.n_weights)

    def expvals(self, inputs: torch.Tensor) -> torch.Tensor:
        """``<Z_i>`` (K, N, n_wires) for encoding angles ``inputs`` (K, N, n_wires): the exact engine, or
        the readout set by :meth:`measure`."""
        angles = self.circuit_angles()
        if self.measurement is None:
            return simulate(self.plan, inputs, angles, dtype=self.sim_dtype)
        return self.measured_expvals(self.definition, inputs, angles, self.sim_dtype)
