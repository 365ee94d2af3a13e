"""Controls for the claim that the hybrids' gains come from their circuits (the study, docs/RESULTS.md).

* a classical twin of the 1HQConv vertex: every circuit replaced by a classical map with the same inputs
  and outputs (12 -> 12 per 2x2 patch of 3 channels), outputs bounded in [-1, 1] like ``<Z>``, and exactly
  the circuit's parameter count;
* the 1HQConv QVU-Net with its circuit weights frozen at initialisation (a fixed random circuit).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hqdm.models.hybrid import QResnetBlock
from hqdm.models.semantics import Semantics

PATCH_VALUES = 12  # 3 channels x 2x2 pixels, the 12 qubits of an HQConv circuit
TWIN_HIDDEN = 3  # 12*3 + 3*12 + 12 = 84 = 3 HQConv layers x 28 angles


class PatchTwin(nn.Module):
    """``z = tanh(W_2 tanh(W_1 p) + b_2)`` for each patch ``p`` of 12 values, one map per circuit it replaces.

    Input and output are (N, 3 * n_circuits, 2, 2) like :class:`hqdm.quantum.layers.PatchCircuit`; circuit
    ``i`` reads channels ``3i..3i+2``. Parameters per circuit: ``W_1`` (3x12), ``W_2`` (12x3), ``b_2`` (12).
    """

    def __init__(self, n_circuits: int = 1) -> None:
        super().__init__()
        self.n_circuits = n_circuits
        bound_1, bound_2 = 1 / math.sqrt(PATCH_VALUES), 1 / math.sqrt(TWIN_HIDDEN)  # nn.Linear's init
        self.w_1 = nn.Parameter(
            torch.empty(n_circuits, TWIN_HIDDEN, PATCH_VALUES).uniform_(-bound_1, bound_1)
        )
        self.w_2 = nn.Parameter(
            torch.empty(n_circuits, PATCH_VALUES, TWIN_HIDDEN).uniform_(-bound_2, bound_2)
        )
        self.b_2 = nn.Parameter(torch.empty(n_circuits, PATCH_VALUES).uniform_(-bound_2, bound_2))

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        patches = x.reshape(n, self.n_circuits, PATCH_VALUES)  # channel-major, as the paper's wires
        hidden = torch.tanh(torch.einsum("kjp,nkp->nkj", self.w_1.to(x.dtype), patches))
        z = torch.tanh(torch.einsum("kpj,nkj->nkp", self.w_2.to(x.dtype), hidden) + self.b_2.to(x.dtype))
        return z.reshape(x.shape)


def twin_vertex_block(channels: int, time_dim: int, *, n_circuits: int, semantics: Semantics) -> nn.Module:
    """A QVU-Net vertex block whose HQConv circuits are :class:`PatchTwin` maps."""
    block = QResnetBlock(channels, time_dim, n_circuits=n_circuits, ansatz="hqconv", semantics=semantics)
    block.circuits_1, block.circuits_2 = PatchTwin(n_circuits), PatchTwin(n_circuits)
    return block


def frozen_vertex_block(channels: int, time_dim: int, *, n_circuits: int, semantics: Semantics) -> nn.Module:
    """A QVU-Net vertex block whose circuit weights never train (they keep their random initial angles)."""
    block = QResnetBlock(channels, time_dim, n_circuits=n_circuits, ansatz="hqconv", semantics=semantics)
    for circuits in (block.circuits_1, block.circuits_2):
        circuits.weights.requires_grad_(False)
    return block
