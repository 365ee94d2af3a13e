"""Stable model names -> constructors, and parameter counting (classical vs quantum)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

from hqdm.models.controls import frozen_vertex_block, twin_vertex_block
from hqdm.models.hybrid import QUANTUM_LAYER_TYPES, QFullResnetBlock, QResnetBlock, QuanResnetBlock
from hqdm.models.lite import BottleneckCircuit, LiteUNet
from hqdm.models.semantics import Semantics, resolve_semantics
from hqdm.models.unet import UNet, check_image_size
from hqdm.registry import lookup

QUANV_LEVEL = 1  # the 14x14, 10-channel encoder level
LITE_QUBITS, LITE_QUBITS_CPU, LITE_LAYERS = 16, 8, 3  # Chen et al. (2025): 16 qubits; 8 for CPU budgets


@dataclass(frozen=True)
class ModelSpec:
    """Everything :func:`build_model` needs to build a model again (saved with pretrained weights)."""

    name: str
    semantics: str
    in_channels: int
    image_size: int


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Callable[[int, int, Semantics], nn.Module]  # (in_channels, image_size, semantics)
    paper_total: int | None  # total printed in the paper for 28x28x1, if any
    control_for: str | None = None  # the hybrid whose circuits this model stands in for (the study's claim 4)


def _unet(in_channels: int, image_size: int, _: Semantics) -> nn.Module:
    return UNet(in_channels, image_size)


def _qvunet(
    n_circuits: int, ansatz: str, in_channels: int, image_size: int, semantics: Semantics
) -> nn.Module:
    vertex = partial(QResnetBlock, n_circuits=n_circuits, ansatz=ansatz, semantics=semantics)
    return UNet(in_channels, image_size, vertex_block=vertex)


def _control(
    block: Callable[..., nn.Module], in_channels: int, image_size: int, semantics: Semantics
) -> nn.Module:
    """The 1HQConv QVU-Net with its vertex block replaced by a control (hqdm.models.controls)."""
    return UNet(in_channels, image_size, vertex_block=partial(block, n_circuits=1, semantics=semantics))


def _full_qvunet(ansatz: str, in_channels: int, image_size: int, semantics: Semantics) -> nn.Module:
    vertex = partial(QFullResnetBlock, ansatz=ansatz, semantics=semantics)
    return UNet(in_channels, image_size, vertex_block=vertex)


def _quanvunet(in_channels: int, image_size: int, semantics: Semantics) -> nn.Module:
    vertex = partial(QResnetBlock, n_circuits=1, ansatz="hqconv", semantics=semantics)
    quanv = partial(QuanResnetBlock, ansatz="hqconv", semantics=semantics)
    return UNet(in_channels, image_size, vertex_block=vertex, encoder_blocks={QUANV_LEVEL: quanv})


def _lite(n_qubits: int | None, in_channels: int, image_size: int, _: Semantics) -> nn.Module:
    """Chen et al. (2025) with the paper's circuit (RZ + CNOT layers); see docs/chen2025.md."""
    if image_size != 28:
        raise ValueError(f"the lightweight U-Nets only support 28x28 images, got image_size={image_size}")
    return LiteUNet(in_channels, n_qubits=n_qubits, n_layers=LITE_LAYERS)


_ENTRIES = (
    ModelEntry("unet", _unet, 483_321),
    ModelEntry("qvunet-1hq", partial(_qvunet, 1, "hqconv"), 475_329),
    ModelEntry("qvunet-7hq", partial(_qvunet, 7, "hqconv"), 440_985),
    ModelEntry("qvunet-full-hq", partial(_full_qvunet, "hqconv"), 429_993),
    ModelEntry("qvunet-1fq", partial(_qvunet, 1, "fqconv"), None),
    ModelEntry("qvunet-7fq", partial(_qvunet, 7, "fqconv"), None),
    ModelEntry("qvunet-full-fq", partial(_full_qvunet, "fqconv"), None),
    ModelEntry("quanvunet", _quanvunet, 474_293),  # HQConv vertex (1 circuit) + HQConv quanvolution
    ModelEntry("lite-unet", partial(_lite, None), None),
    ModelEntry("lite-qunet", partial(_lite, LITE_QUBITS), None),
    ModelEntry("lite-qunet-8q", partial(_lite, LITE_QUBITS_CPU), None),
    ModelEntry("qvunet-1hq-twin", partial(_control, twin_vertex_block), None, control_for="qvunet-1hq"),
    ModelEntry("qvunet-1hq-frozen", partial(_control, frozen_vertex_block), None, control_for="qvunet-1hq"),
)
_REGISTRY = {entry.name: entry for entry in _ENTRIES}


def list_models() -> list[str]:
    """Registered model names, in a stable order."""
    return list(_REGISTRY)


def control_for(name: str) -> str | None:
    """The hybrid that model ``name`` is a control of (its circuits replaced or frozen), else None."""
    return lookup(_REGISTRY, name, "model").control_for


def build_model(
    name: str, *, in_channels: int = 1, image_size: int = 28, semantics: str = "paper"
) -> nn.Module:
    """Build a registered model; ``semantics`` is ``"paper"`` or ``"reference-code"``.

    The model carries how it was built as ``model.spec`` (:class:`ModelSpec`), which is what
    :func:`hqdm.models.pretrained.save_pretrained` writes next to its weights."""
    entry = lookup(_REGISTRY, name, "model")
    resolved = resolve_semantics(semantics)
    check_image_size(image_size)
    model = entry.build(in_channels, image_size, resolved)
    model.spec = ModelSpec(name, resolved.name, in_channels, image_size)
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(classical, quantum) parameter counts; quantum = parameters owned by quantum layers."""
    quantum_ids = {
        id(p)
        for module in model.modules()
        if isinstance(module, (*QUANTUM_LAYER_TYPES, BottleneckCircuit))
        for p in module.parameters()
    }
    params = list(model.parameters())
    quantum = sum(p.numel() for p in params if id(p) in quantum_ids)
    return sum(p.numel() for p in params) - quantum, quantum


def _table_row(entry: ModelEntry, in_channels: int) -> tuple[str, ...]:
    classical, quantum = count_parameters(entry.build(in_channels, 28, resolve_semantics("paper")))
    paper = entry.paper_total if in_channels == 1 else None
    counts = (classical + quantum, classical, quantum)
    return (entry.name, *(f"{n:,}" for n in counts), f"{paper:,}" if paper else "-")


def format_model_table(in_channels: int = 1) -> str:
    """Plain-text table of every registered model's total / classical / quantum parameter counts (28x28)."""
    rows = [("model", "total", "classical", "quantum", "paper")]
    rows += [_table_row(entry, in_channels) for entry in _ENTRIES]
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]

    def fmt(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells)

    lines = [fmt(rows[0]), "  ".join("-" * w for w in widths), *map(fmt, rows[1:])]
    notes = [
        f"28x28x{in_channels} images; the counts are identical under both semantics.",
        "paper = total printed in the paper (28x28x1); quanvunet's 474,293 is not reproducible "
        "(see docs/architecture.md).",
    ]
    return "\n".join([*lines, "", *notes])
