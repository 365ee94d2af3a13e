"""Classical-to-hybrid weight transfer (paper §3.3): copy everything except the U-Net vertex."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["TransferReport", "transfer_weights"]


@dataclass
class TransferReport:
    copied: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)  # target keys under an excluded prefix (the vertex)
    missing: list[str] = field(default_factory=list)  # target keys the source does not have
    shape_mismatch: list[str] = field(default_factory=list)  # same name, different shape

    def summary(self) -> str:
        return (
            f"copied {len(self.copied)} tensors; kept fresh: {len(self.excluded)} excluded (vertex), "
            f"{len(self.missing)} absent in source, {len(self.shape_mismatch)} with another shape"
        )

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "copied": self.copied,
            "excluded": self.excluded,
            "missing": self.missing,
            "shape_mismatch": self.shape_mismatch,
        }


@torch.no_grad()
def transfer_weights(
    source: nn.Module, target: nn.Module, *, exclude_prefixes: Sequence[str] = ("mid.",)
) -> TransferReport:
    """Copy every state-dict entry of ``source`` into ``target`` whose name and shape match, except keys
    starting with one of ``exclude_prefixes``; those keep the target's fresh initialisation."""
    src = source.state_dict()
    report = TransferReport()
    for name, tensor in target.state_dict().items():
        if name.startswith(tuple(exclude_prefixes)):
            report.excluded.append(name)
        elif name not in src:
            report.missing.append(name)
        elif src[name].shape != tensor.shape:
            report.shape_mismatch.append(name)
        else:
            tensor.copy_(src[name].to(device=tensor.device, dtype=tensor.dtype))
            report.copied.append(name)
    return report
