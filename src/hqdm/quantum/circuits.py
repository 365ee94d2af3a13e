"""Circuits as data: an ordered list of gates on wires, built from the papers' ansatzes.

Gate orders and angle indices follow ``docs/circuits.md`` (pinned down from the paper and the authors'
reference code). A circuit knows nothing about how it is simulated: the batched torch engine
(:mod:`hqdm.quantum.engine`) and the PennyLane export (:mod:`hqdm.quantum.pennylane_export`) both read
the same gate list.

An ansatz is one layer builder registered with :func:`register_ansatz`; its name then works everywhere a
name is accepted (:func:`build_circuit`, :func:`hqdm.quantum.expvals`, the layers, the models' blocks).
Everything else about it (name lists, qubit counts, weight shapes) is read from :data:`ANSATZ_REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from hqdm.registry import UnknownNameError, lookup

GateName = Literal["RX", "RY", "RZ", "CRX", "CRZ", "CNOT"]
Encoding = Literal["RX", "RY"]
SEMANTICS = ("paper", "reference-code")


@dataclass(frozen=True)
class Gate:
    """One gate. ``wires`` is (target,) or (control, target); ``weight`` indexes the flat weight vector.

    ``weight`` is None for fixed gates (CNOT). Encoding gates carry ``input`` instead: the index of the
    input feature used as the angle.
    """

    name: GateName
    wires: tuple[int, ...]
    weight: int | None = None
    input: int | None = None

    @property
    def target(self) -> int:
        return self.wires[-1]

    @property
    def control(self) -> int | None:
        return self.wires[0] if len(self.wires) == 2 else None


@dataclass(frozen=True)
class Circuit:
    """``encoding`` (RX or RY) angle encoding of ``n_wires`` inputs, then ``gates``; readout ``<Z_i>``."""

    n_wires: int
    gates: tuple[Gate, ...]
    n_weights: int
    name: str = ""
    encoding: Encoding = "RX"

    @property
    def encoding_gates(self) -> tuple[Gate, ...]:
        return tuple(Gate(self.encoding, (w,), input=w) for w in range(self.n_wires))

    @property
    def executed_gates(self) -> tuple[Gate, ...]:
        """The encoding rotations, then the gates: everything a QPU would execute."""
        return (*self.encoding_gates, *self.gates)


#: ``layer(offset, n_wires, semantics)``: the gates of one layer, its angles indexed from ``offset``
LayerBuilder = Callable[[int, int, str], list[Gate]]


@dataclass(frozen=True)
class Ansatz:
    """A registered ansatz: ``layer`` builds one of its layers on ``wires`` qubits with ``angles_per_layer``
    angles (see :data:`LayerBuilder`)."""

    name: str
    wires: int
    angles_per_layer: int
    layer: LayerBuilder


#: every ansatz by name, in registration order; filled by :func:`register_ansatz`
ANSATZ_REGISTRY: dict[str, Ansatz] = {}


def register_ansatz(
    name: str, *, wires: int, angles_per_layer: int
) -> Callable[[LayerBuilder], LayerBuilder]:
    """Decorator: register a layer builder as the ansatz ``name``; the builder is returned unchanged."""

    def register(layer: LayerBuilder) -> LayerBuilder:
        if name in ANSATZ_REGISTRY:  # a silent replacement would change every model built from the name
            raise ValueError(f"ansatz {name!r} is already registered")
        ANSATZ_REGISTRY[name] = Ansatz(name, wires, angles_per_layer, layer)
        return layer

    return register


def ansatzes(*, wires: int | None = None) -> dict[str, Ansatz]:
    """The registered ansatzes (only those on ``wires`` qubits if given), by name."""
    return {name: a for name, a in ANSATZ_REGISTRY.items() if wires is None or a.wires == wires}


class _AnsatzField(Mapping[str, int]):
    """One field of every registered ansatz by name, read live from the registry (so an ansatz registered
    later appears too)."""

    def __init__(self, field: str) -> None:
        self._field = field

    def __getitem__(self, name: str) -> int:
        return getattr(ANSATZ_REGISTRY[name], self._field)

    def __iter__(self) -> Iterator[str]:
        return iter(ANSATZ_REGISTRY)

    def __len__(self) -> int:
        return len(ANSATZ_REGISTRY)

    def __repr__(self) -> str:
        return repr(dict(self))


#: the registered names, qubits and angles per layer of each ansatz (live views of the registry)
ANSATZES = ANSATZ_REGISTRY.keys()
ANSATZ_WIRES: Mapping[str, int] = _AnsatzField("wires")
ANGLES_PER_LAYER: Mapping[str, int] = _AnsatzField("angles_per_layer")


def _pair(ctrl: int, tgt: int, first_angle: int) -> list[Gate]:
    """A CRZ then a CRX on the same (control, target) pair with consecutive angles."""
    return [Gate("CRZ", (ctrl, tgt), first_angle), Gate("CRX", (ctrl, tgt), first_angle + 1)]


@register_ansatz("hqconv", wires=12, angles_per_layer=28)
def _hqconv_layer(offset: int, n_wires: int, semantics: str) -> list[Gate]:
    gates: list[Gate] = []
    if semantics == "reference-code":
        # The reference loop over A blocks runs zero times; the B blocks read angles 0-3 of the layer.
        return _pair(4, 8, offset) + _pair(0, 4, offset + 2)
    # A blocks: a ring w0->w3->w2->w1->w0 in each group, groups 8-11, 4-7, 0-3.
    for group_index, first_wire in enumerate((8, 4, 0)):
        w0, w1, w2, w3 = range(first_wire, first_wire + 4)
        ring = ((w0, w3), (w3, w2), (w2, w1), (w1, w0))
        for pair_index, (ctrl, tgt) in enumerate(ring):
            gates += _pair(ctrl, tgt, offset + 8 * group_index + 2 * pair_index)
    # B blocks couple the groups through their first wires.
    return gates + _pair(4, 8, offset + 24) + _pair(0, 4, offset + 26)


@register_ansatz("fqconv", wires=12, angles_per_layer=24)
def _fqconv_layer(offset: int, n_wires: int, semantics: str) -> list[Gate]:
    gates: list[Gate] = []
    # (controlled group, control group): each group is controlled by the next one cyclically.
    for pair_index, (tgt_first, ctrl_first) in enumerate(((8, 0), (4, 8), (0, 4))):
        base = offset + 8 * pair_index
        pairs = [(ctrl_first + j, tgt_first + j) for j in (3, 2, 1, 0)]
        gates += [Gate("CRZ", p, base + i) for i, p in enumerate(pairs)]
        gates += [Gate("CRX", p, base + 4 + i) for i, p in enumerate(pairs)]
    return gates


@register_ansatz("basic", wires=4, angles_per_layer=4)
def _basic_layer(offset: int, n_wires: int, semantics: str) -> list[Gate]:
    """PennyLane's BasicEntanglerLayers with RX rotations: one RX per wire, then a CNOT ring."""
    gates = [Gate("RX", (w,), offset + w) for w in range(n_wires)]
    return gates + [Gate("CNOT", (w, (w + 1) % n_wires)) for w in range(n_wires)]


def build_circuit(ansatz: str, n_layers: int, *, semantics: str = "paper") -> Circuit:
    """The circuit of ``n_layers`` layers of ``ansatz`` in gate order, weights flattened layer-major."""
    entry = check_ansatz(ansatz, semantics)
    if not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be a positive integer, got {n_layers!r}")
    per_layer = entry.angles_per_layer
    gates: list[Gate] = []
    for layer in range(n_layers):
        gates += entry.layer(layer * per_layer, entry.wires, semantics)
    return Circuit(entry.wires, tuple(gates), n_layers * per_layer, f"{ansatz}-{semantics}-{n_layers}")


def chen_circuit(n_wires: int = 16, n_layers: int = 1, *, semantics: str = "paper") -> Circuit:
    """Chen et al. (2025) bottleneck circuit: RY encoding, then per layer a rotation on every wire and a
    CNOT chain 0->1->...->n-1; readout ``<Z>`` on every wire.

    ``semantics="paper"``: one RZ per wire (weight ``layer * n_wires + wire``). RZ is diagonal and CNOT
    permutes basis states, so every ``<Z_i>`` is independent of the weights (a fixed feature map of the
    inputs; see docs/chen2025.md). ``semantics="reference-code"``: RZ then RY per wire (weights
    ``layer * 2 * n_wires + 2 * wire + {0, 1}``), as in the authors' current code; the RY makes it trainable.
    """
    check_semantics(semantics)
    if not isinstance(n_wires, int) or n_wires < 2:
        raise ValueError(f"n_wires must be an integer >= 2, got {n_wires!r}")
    if not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be a positive integer, got {n_layers!r}")
    per_wire = 1 if semantics == "paper" else 2
    gates: list[Gate] = []
    for layer in range(n_layers):
        first = layer * per_wire * n_wires
        for w in range(n_wires):
            gates.append(Gate("RZ", (w,), first + per_wire * w))
            if semantics == "reference-code":
                gates.append(Gate("RY", (w,), first + 2 * w + 1))
        gates += [Gate("CNOT", (w, w + 1)) for w in range(n_wires - 1)]
    n_weights = n_layers * per_wire * n_wires
    return Circuit(n_wires, tuple(gates), n_weights, f"chen-{semantics}-{n_wires}w-{n_layers}", encoding="RY")


def check_semantics(semantics: str) -> None:
    """:class:`~hqdm.registry.UnknownNameError` unless ``semantics`` is one of :data:`SEMANTICS`."""
    if semantics not in SEMANTICS:
        raise UnknownNameError("semantics", semantics, SEMANTICS)


def check_ansatz(ansatz: str, semantics: str) -> Ansatz:
    """The registered ansatz ``ansatz`` (:class:`~hqdm.registry.UnknownNameError` if there is none), after
    checking ``semantics``."""
    entry = lookup(ANSATZ_REGISTRY, ansatz, "ansatz")
    check_semantics(semantics)
    return entry
