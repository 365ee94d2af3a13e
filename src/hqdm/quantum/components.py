"""A circuit split into independent sub-circuits: wire sets that no two-qubit gate connects.

The encoding is a product state, so wires that no gate ever couples stay in a product state, and each
``<Z_w>`` depends only on the sub-circuit of its own wire set. FQConv is the case that matters: every gate
pairs wire ``j`` with ``j + 4`` or ``j + 8``, so a 12-qubit FQConv circuit is four independent 3-qubit
circuits (8 amplitudes each instead of 4,096). The reference-code HQConv is one 3-wire circuit plus nine
bare wires. Sub-circuits with the same gates on the same local wires are grouped into one
:class:`Component`, so the simulator runs them as extra circuits of one call.
"""

from __future__ import annotations

from dataclasses import dataclass

from hqdm.quantum.circuits import Circuit, Gate


@dataclass(frozen=True)
class Component:
    """``circuit`` on local wires 0..m-1 and local weights 0..L-1, which occurs once per copy.

    ``wires[c][i]`` is the wire of the whole circuit that local wire ``i`` of copy ``c`` stands for, and
    ``weights[c][j]`` the weight index of the whole circuit that local weight ``j`` of copy ``c`` reads.
    """

    circuit: Circuit
    wires: tuple[tuple[int, ...], ...]
    weights: tuple[tuple[int, ...], ...]


def _wire_sets(circuit: Circuit) -> list[tuple[int, ...]]:
    """Connected wire sets under the two-qubit gates, each sorted, ordered by their first wire."""
    root = list(range(circuit.n_wires))

    def find(w: int) -> int:
        while root[w] != w:
            root[w] = root[root[w]]
            w = root[w]
        return w

    for gate in circuit.gates:
        if len(gate.wires) == 2:
            a, b = find(gate.wires[0]), find(gate.wires[1])
            root[max(a, b)] = min(a, b)
    sets: dict[int, list[int]] = {}
    for w in range(circuit.n_wires):
        sets.setdefault(find(w), []).append(w)
    return [tuple(ws) for ws in sets.values()]


def _restrict(circuit: Circuit, wires: tuple[int, ...]) -> tuple[Circuit, tuple[int, ...]]:
    """The gates on ``wires`` relabelled to local wires and local weights (weights in ascending order)."""
    local = {w: i for i, w in enumerate(wires)}
    gates = [g for g in circuit.gates if g.target in local]
    used = tuple(sorted({g.weight for g in gates if g.weight is not None}))
    weight = {w: i for i, w in enumerate(used)}
    relabelled = tuple(
        Gate(g.name, tuple(local[w] for w in g.wires), None if g.weight is None else weight[g.weight])
        for g in gates
    )
    name = f"{circuit.name}[{','.join(map(str, wires))}]" if circuit.name else ""
    return Circuit(len(wires), relabelled, len(used), name, circuit.encoding), used


def components(circuit: Circuit) -> tuple[Component, ...]:
    """The independent sub-circuits of ``circuit``, isomorphic ones grouped, in order of first wire."""
    grouped: dict[tuple, tuple[Circuit, list, list]] = {}
    for wires in _wire_sets(circuit):
        sub, used = _restrict(circuit, wires)
        key = (sub.n_wires, sub.gates, sub.n_weights)  # the name differs between copies
        entry = grouped.setdefault(key, (sub, [], []))
        entry[1].append(wires)
        entry[2].append(used)
    return tuple(Component(sub, tuple(ws), tuple(us)) for sub, ws, us in grouped.values())
