"""The fast forwards (channels-last, fused GroupNorm/FiLM/SiLU, regrouped linear attention, bf16 autocast)
against the plain forwards of hqdm.models.plain, for every registered model and both semantics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import eps_inputs
from hqdm.models import SEMANTICS, build_model, list_models
from hqdm.models.plain import plain_forwards
from hqdm.precision import resolve_precision, set_precision
from hqdm.quantum import expvals
from hqdm.registry import UnknownNameError


def _output_and_grads(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, dict]:
    model.zero_grad(set_to_none=True)
    out = model(x, t)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("semantics", SEMANTICS)
@pytest.mark.parametrize("name", list_models())
def test_fast_fp32_forward_and_gradients_equal_the_plain_ones(name: str, semantics: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, semantics=semantics)
    x, t = eps_inputs((0, 7, 640))
    fast, fast_grads = _output_and_grads(model, x, t)
    with plain_forwards():
        plain, plain_grads = _output_and_grads(model, x, t)
    assert fast.is_contiguous() and fast.dtype == torch.float32
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    assert fast_grads.keys() == plain_grads.keys()
    # Relative to the largest gradient: a conv bias before a GroupNorm has a zero gradient up to rounding.
    # The largest are the attention output biases, behind a LayerNorm of a map of tiny variance at
    # initialisation, which amplifies float32 rounding to ~1.5e-4 of their size; a wrong formula is O(1) off.
    scale = max(grad.abs().max() for grad in plain_grads.values())
    for key, grad in plain_grads.items():
        torch.testing.assert_close(fast_grads[key] / scale, grad / scale, rtol=0, atol=1e-3, msg=key)


@pytest.mark.parametrize("name", ["unet", "qvunet-1hq", "quanvunet", "lite-qunet-8q"])
def test_bf16_precision_runs_in_bfloat16_and_stays_close_to_fp32(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name)
    x, t = eps_inputs((0, 7, 640))
    with torch.no_grad():
        fp32 = model(x, t)
        set_precision(model, "bf16")
        bf16 = model(x, t)
        set_precision(model, "fp32")
        again = model(x, t)
    error = (bf16 - fp32).abs().max() / fp32.abs().max()
    assert bf16.dtype == torch.float32  # the output keeps the input's dtype
    assert 0 < error < 0.05, error  # rounded like bf16 (not exact), not wrong
    assert torch.equal(again, fp32)  # the setting is reversible: nothing was cast in place


def test_circuits_are_simulated_at_full_precision_under_autocast() -> None:
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(64, 12, generator=gen) * 6).to(torch.bfloat16)
    w = torch.rand(3, 28, generator=gen) * 6
    exact = expvals("hqconv", x.float(), w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = expvals("hqconv", x, w)
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, exact, rtol=0, atol=1e-6)


def test_auto_precision_follows_the_hardware() -> None:
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    native = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    with pytest.raises(UnknownNameError, match="unknown precision 'fp16'"):
        resolve_precision("fp16", "cpu")
