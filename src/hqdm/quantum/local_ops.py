"""Single-qubit operators on batched states stored flat, ``(rows, 2**bits)``.

Bit 0 is the most significant bit of a basis index. A state vector of ``n`` qubits has ``bits = n`` (wire
``w`` is bit ``w``, wire 0 the most significant, as in PennyLane); a density matrix flattened row-major has
``bits = 2n``: wire ``w``'s row bit is bit ``w`` and its column bit is bit ``n + w``. Each operation views
the state as a few dimensions around the bits it touches, so every pass is one strided loop. These few
functions are all the gate-by-gate simulators (:mod:`~hqdm.quantum.density`,
:mod:`~hqdm.quantum.trajectories`) need.
"""

from __future__ import annotations

import torch

from hqdm.quantum.circuits import Gate

#: the 2x2 block of each gate that has one (CNOT: X on the target)
_ROTATIONS = {"RX": "x", "CRX": "x", "RY": "y", "RZ": "z", "CRZ": "z"}
#: gates whose 2x2 block is diagonal: each amplitude is one product, not a sum of two
DIAGONAL_GATES = frozenset(name for name, axis in _ROTATIONS.items() if axis == "z")


def rotation(axis: str, angles: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(rows,) angles -> (rows, 2, 2) matrices of exp(-i angle/2 P), P the Pauli ``axis`` ("x", "y", "z")."""
    half = angles.to(dtype.to_real()) / 2
    c, s = torch.cos(half).to(dtype), torch.sin(half).to(dtype)
    zero = torch.zeros_like(c)
    if axis == "x":
        rows = [[c, -1j * s], [-1j * s, c]]
    elif axis == "y":
        rows = [[c, -s], [s, c]]
    else:
        rows = [[c - 1j * s, zero], [zero, c + 1j * s]]
    return torch.stack([torch.stack(row, -1) for row in rows], -2)


def gate_matrix(gate: Gate, angles: torch.Tensor | None, rows: int, dtype: torch.dtype) -> torch.Tensor:
    """The (rows, 2, 2) block the gate applies to its target (under its control, if any)."""
    if gate.name == "CNOT":
        x = torch.tensor([[0, 1], [1, 0]], dtype=dtype)
        return x.expand(rows, 2, 2)
    return rotation(_ROTATIONS[gate.name], angles, dtype)


def gate_angles(gate: Gate, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor | None:
    """The (rows,) angles of ``gate`` for inputs (rows, n_wires) and weights (rows, n_weights): an input
    feature (encoding), a weight, or none (CNOT)."""
    if gate.input is not None:
        return inputs[:, gate.input]
    return None if gate.weight is None else weights[:, gate.weight]


def split(state: torch.Tensor, bits: tuple[int, ...]) -> torch.Tensor:
    """A view of flat ``state`` (rows, 2**k) with a size-2 dimension for each of ``bits`` (ascending) and
    the bits between them merged: e.g. bits (a, b) -> (rows, 2**a, 2, 2**(b-a-1), 2, 2**(k-b-1))."""
    k = state.shape[1].bit_length() - 1
    shape, previous = [state.shape[0]], -1
    for bit in bits:
        shape += [1 << (bit - previous - 1), 2]
        previous = bit
    return state.view(*shape, 1 << (k - previous - 1))


def apply(
    state: torch.Tensor,
    matrix: torch.Tensor,
    bit: int,
    control: int | None = None,
    out: torch.Tensor | None = None,
    *,
    diagonal: bool = False,
    idle: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """``matrix`` (rows, 2, 2) on ``bit`` of the flat ``state``; with ``control``, only where that bit is 1,
    and the diagonal ``idle`` on ``bit`` where it is 0 (the identity by default: a copy).
    ``diagonal``: the matrix's off-diagonal entries are zero (:data:`DIAGONAL_GATES`), so they are skipped.

    Written through strided views (no stacking copies) into ``out`` (a new tensor if None, never ``state``
    itself); not differentiable."""
    if out is None:
        out = torch.empty_like(state)
    bits = (bit,) if control is None else tuple(sorted((bit, control)))
    source, target = split(state, bits), split(out, bits)
    dim = 2 + 2 * bits.index(bit)  # the target's dimension in the views
    if control is not None:
        control_dim = 2 + 2 * bits.index(control)
        source_idle, target_idle = source.select(control_dim, 0), target.select(control_dim, 0)
        source, target = source.select(control_dim, 1), target.select(control_dim, 1)
        dim -= 1 if control_dim < dim else 0
        if idle == (1.0, 1.0):  # the half where the control is 0 is copied as it is
            target_idle.copy_(source_idle)
        else:
            for row, factor in enumerate(idle):
                torch.mul(source_idle.select(dim, row), factor, out=target_idle.select(dim, row))
    m = matrix.reshape(matrix.shape[0], *([1] * (source.dim() - 2)), 2, 2).to(state.device, state.dtype)
    for row in (0, 1):
        written = target.select(dim, row)
        if diagonal:
            torch.mul(source.select(dim, row), m[..., row, row], out=written)
        else:
            torch.mul(source.select(dim, 0), m[..., row, 0], out=written)
            written.addcmul_(source.select(dim, 1), m[..., row, 1])
    return out


def apply_channel(rho: torch.Tensor, superop: torch.Tensor, row: int, column: int) -> torch.Tensor:
    """A single-qubit channel on a flat density matrix (bits ``row`` < ``column`` of one wire), given as the
    4x4 map of that wire's (row bit, column bit) block (:func:`superoperator`)."""
    view = split(rho, (row, column))
    blocks = torch.stack([view.select(4, j).select(2, i) for i in (0, 1) for j in (0, 1)])
    mapped = (superop.to(rho) @ blocks.flatten(1)).view(blocks.shape)
    out = torch.empty_like(rho)
    target = split(out, (row, column))
    for index, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        target.select(4, j).select(2, i).copy_(mapped[index])
    return out


def superoperator(kraus: list[torch.Tensor]) -> torch.Tensor:
    """``sum_k K_k (x) conj(K_k)``: vec(K rho K^H) for the row-major vec of a 2x2 block."""
    return sum(torch.kron(k, k.conj()) for k in kraus)


def depolarizing_kraus(p: float, dtype: torch.dtype) -> list[torch.Tensor]:
    """sqrt(1-p) I, sqrt(p/3) X, sqrt(p/3) Y, sqrt(p/3) Z."""
    paulis = pauli_matrices(dtype)
    return [paulis[0] * (1 - p) ** 0.5, *(m * (p / 3) ** 0.5 for m in paulis[1:])]


def amplitude_damping_kraus(gamma: float, dtype: torch.dtype) -> list[torch.Tensor]:
    """[[1, 0], [0, sqrt(1-gamma)]] (no decay) and [[0, sqrt(gamma)], [0, 0]] (|1> -> |0>)."""
    keep = torch.tensor([[1, 0], [0, (1 - gamma) ** 0.5]], dtype=dtype)
    decay = torch.tensor([[0, gamma**0.5], [0, 0]], dtype=dtype)
    return [keep, decay]


def pauli_matrices(dtype: torch.dtype) -> torch.Tensor:
    """(4, 2, 2): I, X, Y, Z."""
    return torch.tensor(
        [[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=dtype
    )
