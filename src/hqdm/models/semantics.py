"""The two readings of the hybrid models: the paper's text and the authors' reference code.

Everything that differs between them is decided here and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hqdm.registry import lookup


@dataclass(frozen=True)
class Semantics:
    """How the quantum blocks behave; see docs/architecture.md for the evidence behind each flag."""

    name: str
    # QResNet: stage 2 reuses the stage-1 circuit outputs (stage-2 circuits allocated but unused).
    vertex_stage2_reuses_stage1: bool
    # QuanResNet: the stage-2 quanvolution reads the block input x instead of the intermediate h.
    quanv_stage2_reads_block_input: bool
    # Full quantum vertex: both stages use the first BasicEntangler parameter set.
    full_vertex_shares_basic_circuit: bool

    def circuit_options(self, ansatz: str) -> dict[str, Any]:
        """Keyword arguments for ``PatchCircuit`` / ``Quanvolution`` with this ansatz."""
        if self.name == "paper":
            return {"semantics": "paper", "wire_order": "channel-major", "angle_scale": 1.0}
        return {
            # Only HQConv has a code semantics (its A-block loop never runs in the reference).
            "semantics": "reference-code" if ansatz == "hqconv" else "paper",
            "wire_order": "pixel-major",  # NHWC flatten of the 2x2x3 patch
            # The reference multiplies CRZ/CRX angles by 2*pi; its BasicEntangler RX angles are unscaled.
            "angle_scale": 1.0 if ansatz == "basic" else 2.0 * math.pi,
        }


_BY_NAME = {  # one entry per name in SEMANTICS
    "paper": Semantics("paper", False, False, False),
    "reference-code": Semantics("reference-code", True, True, True),
}


def resolve_semantics(semantics: str | Semantics) -> Semantics:
    """Look up a semantics by name (:class:`~hqdm.registry.UnknownNameError` lists the valid ones)."""
    if isinstance(semantics, Semantics):
        return semantics
    return lookup(_BY_NAME, semantics, "semantics")
