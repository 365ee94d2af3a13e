"""Switch a whole model's circuits (or some of them) from exact ``<Z>`` to finite shots and/or noise.

Every circuit layer (:class:`~hqdm.quantum.layers.PatchCircuit` in the vertex and quanvolution blocks,
:class:`~hqdm.models.lite.BottleneckCircuit` in the lightweight U-Net) is a
:class:`~hqdm.quantum.measured_layer.MeasuredLayer`. Each gets its own generator, seeded from the run's
seed and the layer's name, so layers never share random draws and adding a layer changes no other's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from hqdm.quantum.errors import MeasurementError
from hqdm.quantum.measured_layer import MeasuredLayer
from hqdm.quantum.measurement import Measurement


def quantum_layers(model: nn.Module) -> list[tuple[str, MeasuredLayer]]:
    """``(name, layer)`` of every circuit layer of ``model``, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, MeasuredLayer)]


def layer_seed(seed: int, name: str) -> int:
    """A well-mixed seed for the layer ``name`` of a run seeded ``seed``."""
    words = [seed % 2**64, *name.encode()]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> 1)


def set_measurement(
    model: nn.Module,
    measurement: Measurement | None,
    *,
    seed: int = 0,
    layers: Sequence[str] | None = None,
) -> list[str]:
    """Read the circuits of ``layers`` (module names; default all) with ``measurement`` (None: exact).

    Returns the names of the layers set. An unknown name raises MeasurementError listing the circuit
    layers."""
    found = quantum_layers(model)
    names = [name for name, _ in found]
    if layers is not None and (unknown := sorted(set(layers) - set(names))):
        raise MeasurementError(f"no circuit layer named {unknown}; the model's circuit layers are {names}")
    chosen = [(name, layer) for name, layer in found if layers is None or name in layers]
    for name, layer in chosen:
        layer.measure(measurement, seed=layer_seed(seed, name))
    return [name for name, _ in chosen]


def draw_states(model: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """Where every circuit layer's shot and noise draws stand, by layer name: saved with a stopped
    measurement so that it resumes with the draws it would have made (:func:`restore_draws`)."""
    return {name: layer.draw_states() for name, layer in quantum_layers(model)}


def restore_draws(model: nn.Module, states: dict[str, dict[str, torch.Tensor]]) -> None:
    """Put every circuit layer's draws back where :func:`draw_states` found them (after
    :func:`set_measurement` with the same measurement and seed)."""
    for name, layer in quantum_layers(model):
        layer.restore_draws(states.get(name, {}))
