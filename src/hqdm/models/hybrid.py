"""Hybrid ResNet blocks: variational circuits replace (part of) the two convolutions of a ResNet block.

Each block keeps the classical block's interface ``block(x[B,C,H,W], temb[B,T]) -> [B,C,H,W]`` and its
GroupNorm / FiLM / SiLU / residual skeleton. A 12-qubit circuit reads three channels of a 2x2 map.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hqdm.models.blocks import FiLM, WSConv2d, group_norm, norm_film_silu
from hqdm.models.semantics import Semantics, resolve_semantics
from hqdm.quantum.circuits import ansatzes
from hqdm.quantum.layers import PatchCircuit, Quanvolution
from hqdm.registry import lookup

CIRCUIT_LAYERS = 3  # HQConv / FQConv depth in the paper
BASIC_LAYERS = 4  # BasicEntangler depth on the full vertex's last channel
CHANNELS_PER_CIRCUIT = 3  # 3 channels x 2x2 pixels = 12 qubits
QUANTUM_LAYER_TYPES: tuple[type[nn.Module], ...] = (PatchCircuit, Quanvolution)


def _check_ansatz(ansatz: str) -> None:
    """A block's circuit reads CHANNELS_PER_CIRCUIT channels of a 2x2 map: any registered ansatz on that
    many wires fits."""
    lookup(ansatzes(wires=4 * CHANNELS_PER_CIRCUIT), ansatz, "12-qubit ansatz")


def _circuit_bank(n: int, ansatz: str, n_layers: int, semantics: Semantics) -> PatchCircuit:
    """``n`` independent circuits (weights ``(n, layers, angles)`` if n > 1) run in one simulator call;
    circuit i reads channel block i of its input."""
    return PatchCircuit(ansatz, n_layers, n_circuits=n, **semantics.circuit_options(ansatz))


class QResnetBlock(nn.Module):
    """QVU-Net vertex block: ``n_circuits`` circuits on the first 3*n channels, a WSConv on the rest.

    Stage 1: ``[circuits_1(x) | conv_0(x)] -> GN -> FiLM -> SiLU``.
    Stage 2: ``[q | conv_1(h)] -> GN -> SiLU``, plus x, where ``q = circuits_2(h)`` (paper) or the
    stage-1 outputs again (reference code).
    """

    def __init__(
        self,
        channels: int,
        time_dim: int,
        *,
        n_circuits: int,
        ansatz: str,
        semantics: str | Semantics = "paper",
    ) -> None:
        super().__init__()
        _check_ansatz(ansatz)
        quantum = CHANNELS_PER_CIRCUIT * n_circuits
        if n_circuits < 1 or quantum >= channels:
            raise ValueError(
                f"n_circuits={n_circuits} must be >= 1 and leave at least one classical channel of {channels}"
            )
        self.semantics = resolve_semantics(semantics)
        self.quantum_channels = quantum
        self.circuits_1 = _circuit_bank(n_circuits, ansatz, CIRCUIT_LAYERS, self.semantics)
        self.circuits_2 = _circuit_bank(n_circuits, ansatz, CIRCUIT_LAYERS, self.semantics)
        self.conv_0 = WSConv2d(channels - quantum, channels - quantum)
        self.norm_0 = group_norm(channels)
        self.time_mlp = FiLM(time_dim, channels)
        self.conv_1 = WSConv2d(channels - quantum, channels - quantum)
        self.norm_1 = group_norm(channels)

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        q = self.quantum_channels
        q1 = self.circuits_1(x[:, :q])
        h = torch.cat([q1, self.conv_0(x[:, q:])], dim=1)
        h = norm_film_silu(h, self.norm_0, *self.time_mlp.scale_shift(temb))
        # The reference computes circuits_2(h) and then discards it; skipping it gives the same output.
        q2 = q1 if self.semantics.vertex_stage2_reuses_stage1 else self.circuits_2(h[:, :q])
        h = torch.cat([q2, self.conv_1(h[:, q:])], dim=1)
        return x + norm_film_silu(h, self.norm_1)


class QFullResnetBlock(nn.Module):
    """Fully quantum vertex block: 12-qubit circuits on channel triplets, a 4-qubit BasicEntangler
    circuit on the last channel, no convolutions (13 + 1 circuits per stage at 40 channels)."""

    def __init__(
        self, channels: int, time_dim: int, *, ansatz: str, semantics: str | Semantics = "paper"
    ) -> None:
        super().__init__()
        _check_ansatz(ansatz)
        n_circuits, rest = divmod(channels, CHANNELS_PER_CIRCUIT)
        if rest != 1:
            raise ValueError(f"a full quantum block needs 3k+1 channels (40 in the paper), got {channels}")
        self.semantics = resolve_semantics(semantics)
        self.quantum_channels = CHANNELS_PER_CIRCUIT * n_circuits
        self.circuits_1 = _circuit_bank(n_circuits, ansatz, CIRCUIT_LAYERS, self.semantics)
        self.basic_1 = PatchCircuit("basic", BASIC_LAYERS, **self.semantics.circuit_options("basic"))
        self.norm_0 = group_norm(channels)
        self.time_mlp = FiLM(time_dim, channels)
        self.circuits_2 = _circuit_bank(n_circuits, ansatz, CIRCUIT_LAYERS, self.semantics)
        self.basic_2 = PatchCircuit("basic", BASIC_LAYERS, **self.semantics.circuit_options("basic"))
        self.norm_1 = group_norm(channels)

    def _stage(self, circuits: PatchCircuit, basic: PatchCircuit, x: Tensor) -> Tensor:
        q = self.quantum_channels
        return torch.cat([circuits(x[:, :q]), basic(x[:, q:])], dim=1)

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        stage_1 = self._stage(self.circuits_1, self.basic_1, x)
        h = norm_film_silu(stage_1, self.norm_0, *self.time_mlp.scale_shift(temb))
        basic = self.basic_1 if self.semantics.full_vertex_shares_basic_circuit else self.basic_2
        return x + norm_film_silu(self._stage(self.circuits_2, basic, h), self.norm_1)


class QuanResnetBlock(nn.Module):
    """QuanvU-Net encoder block: a 2x2/stride-2 quanvolution on channels 0..2, a WSConv on the rest.

    The stage-2 quanvolution reads the intermediate h (paper) or the block input x (reference code).
    """

    def __init__(
        self, channels: int, time_dim: int, *, ansatz: str, semantics: str | Semantics = "paper"
    ) -> None:
        super().__init__()
        _check_ansatz(ansatz)
        q = CHANNELS_PER_CIRCUIT
        if channels <= q:
            raise ValueError(f"a quanvolutional block needs more than {q} channels, got {channels}")
        self.semantics = resolve_semantics(semantics)
        options = self.semantics.circuit_options(ansatz)
        self.quanv_0 = Quanvolution(ansatz, CIRCUIT_LAYERS, **options)
        self.conv_0 = WSConv2d(channels - q, channels - q)
        self.norm_0 = group_norm(channels)
        self.time_mlp = FiLM(time_dim, channels)
        self.quanv_1 = Quanvolution(ansatz, CIRCUIT_LAYERS, **options)
        self.conv_1 = WSConv2d(channels - q, channels - q)
        self.norm_1 = group_norm(channels)

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        q = CHANNELS_PER_CIRCUIT
        h = torch.cat([self.quanv_0(x[:, :q]), self.conv_0(x[:, q:])], dim=1)
        h = norm_film_silu(h, self.norm_0, *self.time_mlp.scale_shift(temb))
        quanv_input = x if self.semantics.quanv_stage2_reads_block_input else h
        h = torch.cat([self.quanv_1(quanv_input[:, :q]), self.conv_1(h[:, q:])], dim=1)
        return x + norm_film_silu(h, self.norm_1)
