"""The low-rank readout (hqdm.quantum.engine.readout): its values against the full state, its
written-out backwards against finite differences."""

from __future__ import annotations

import pytest
import torch

from hqdm.quantum.engine.readout import GramReadout, HermitianGram, cluster_signs


@pytest.mark.parametrize("dims", [(16, 256), (4, 2, 8), (8,)])
def test_gram_readout_equals_the_full_state_and_its_written_out_gradient_is_exact(dims):
    """The low-rank readout (rank-3 terms on 2 or 3 clusters; one rank-1 cluster) against <Z> of the
    multiplied-out state, and its hand-written backward against finite differences (gradcheck)."""
    rank = 1 if len(dims) == 1 else 3
    g = torch.Generator().manual_seed(5)
    clusters = [
        torch.randn(2, 3, rank, d, generator=g, dtype=torch.complex128).requires_grad_() for d in dims
    ]
    signs = [cluster_signs(d.bit_length() - 1) for d in dims]

    def readout(*terms):
        return GramReadout.apply(signs, *terms)

    full = None  # sum over terms of the outer product of the clusters, first cluster's wires first
    for r in range(rank):
        term = clusters[0][:, :, r]
        for t in clusters[1:]:
            term = (term[..., :, None] * t[:, :, r, None, :]).flatten(-2)
        full = term if full is None else full + term
    expected = full.abs().square() @ cluster_signs(full.shape[-1].bit_length() - 1).T
    assert torch.allclose(readout(*clusters), expected, atol=1e-10, rtol=0)
    small = [t[:1, :2].detach().clone().requires_grad_() for t in clusters] if dims[-1] > 8 else clusters
    assert torch.autograd.gradcheck(readout, small)


def test_hermitian_gram_backward_is_exact():
    a = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(8), dtype=torch.complex128)
    assert torch.allclose(HermitianGram.apply(a), a @ a.mH, atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(HermitianGram.apply, a.requires_grad_())
