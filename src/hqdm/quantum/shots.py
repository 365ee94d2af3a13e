"""From a circuit's output distribution to ``<Z_i>``: exactly, or estimated from sampled bitstrings.

With shots, each circuit's N bitstrings are drawn jointly from its distribution over all ``2**n``
basis states (one multinomial draw of whole bitstrings), so the wires of one shot are as correlated as the
state makes them. Readout error then flips each measured bit independently with the readout rate; only the
number of ones per wire enters ``<Z_i>``, so the flips are drawn as two binomials per wire (ones that
read 0, zeros that read 1), which has the same distribution as flipping bit by bit.
"""

from __future__ import annotations

import torch

#: rows x shots per multinomial call (bounds the int64 draws held at once: 32 MiB)
DRAWS_PER_CALL = 1 << 22


def _bits(n_wires: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(2**n, n): bit of wire w in basis state i (wire 0 the most significant)."""
    index = torch.arange(1 << n_wires, device=device)
    shifts = torch.arange(n_wires - 1, -1, -1, device=device)
    return ((index[:, None] >> shifts) & 1).to(dtype)


def exact_expvals(probs: torch.Tensor, n_wires: int, readout: float = 0.0) -> torch.Tensor:
    """(rows, n) ``<Z_i>`` of distributions (rows, 2**n); a bit-flip rate r scales each by (1 - 2r)."""
    signs = 1 - 2 * _bits(n_wires, probs.dtype, probs.device)
    return (probs @ signs) * (1 - 2 * readout)


def sampled_expvals(
    probs: torch.Tensor,
    n_wires: int,
    shots: int,
    *,
    readout: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(rows, n) estimates of ``<Z_i>`` from ``shots`` bitstrings per row of ``probs`` (rows, 2**n).

    Random numbers are drawn on the generator's device (the probabilities' device without one)."""
    where = generator.device if generator is not None else probs.device
    real = torch.float64  # counts up to 2**53 are exact
    bits = _bits(n_wires, real, where)
    per_call = max(1, DRAWS_PER_CALL // shots)
    estimates = []
    for chunk in probs.to(where, real).split(per_call):
        draws = torch.multinomial(chunk, shots, replacement=True, generator=generator)
        counts = torch.zeros_like(chunk).scatter_add_(1, draws, torch.ones_like(draws, dtype=real))
        ones = counts @ bits  # shots that read 1 on each wire
        if readout > 0:
            rate = torch.full_like(ones, readout)
            kept = torch.binomial(ones, 1 - rate, generator=generator)
            ones = kept + torch.binomial(shots - ones, rate, generator=generator)
        estimates.append(1 - 2 * ones / shots)
    return torch.cat(estimates).to(probs.device, probs.dtype)
