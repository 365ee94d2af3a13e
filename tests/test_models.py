"""hqdm.models: exact parameter counts, shapes, paper vs reference-code semantics, gradients, layers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import eps_inputs
from hqdm.models import SEMANTICS, UNet, build_model, count_parameters, format_model_table, list_models
from hqdm.models.attention import FullAttention, LinearAttention
from hqdm.models.blocks import SinusoidalEmbedding, WSConv2d, resize_nearest
from hqdm.models.hybrid import QuanResnetBlock
from hqdm.quantum.layers import PatchCircuit
from hqdm.registry import UnknownNameError

# Totals measured on the authors' JAX reference code (docs/architecture.md, "Parameter counts").
EXPECTED_COUNTS = {  # name: (total, quantum)
    "unet": (483_321, 0),
    "qvunet-1hq": (475_329, 336),
    "qvunet-7hq": (440_985, 2_352),
    "qvunet-full-hq": (429_993, 4_432),
    "qvunet-1fq": (475_281, 288),
    "qvunet-7fq": (440_649, 2_016),
    "qvunet-full-fq": (429_369, 3_808),
    "quanvunet": (473_817, 672),
}
TIMESTEPS = (7, 640)  # the model inputs' timesteps: one early, one late


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _build(name: str, semantics: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, semantics=semantics)


def test_registry_names_are_the_documented_ones() -> None:
    # the first paper's networks come first, in table order; other papers' models follow
    assert list_models()[: len(EXPECTED_COUNTS)] == list(EXPECTED_COUNTS)


@pytest.mark.parametrize("name", list(EXPECTED_COUNTS))
def test_parameter_counts_match_reference_in_both_semantics(name: str) -> None:
    total, quantum = EXPECTED_COUNTS[name]
    for semantics in SEMANTICS:
        classical_count, quantum_count = count_parameters(build_model(name, semantics=semantics))
        assert (classical_count + quantum_count, quantum_count) == (total, quantum), semantics


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("init_conv", 500),
        ("time_mlp.dense_0", 440),
        ("time_mlp.dense_1", 1_640),
        ("downs.0.res0", 2_680),
        ("downs.0.attn", 5_150),
        ("downs.1.down", 3_220),
        ("downs.2.down", 29_430),
        ("downs.3.res1", 18_840),
        ("downs.3.down", 10_840),
        ("mid.res0", 32_320),
        ("mid.attn", 20_560),
        ("mid", 85_200),
        ("ups.3.res0", 45_960),
        ("ups.3.attn", 20_600),
        ("ups.3.up", 10_830),
        ("ups.2.res1", 25_770),
        ("ups.1.res0", 11_380),
        ("ups.0.up", 910),
        ("final_res", 3_790),
        ("final_conv", 11),
    ],
)
def test_unet_per_module_counts_match_spec_table(module: str, expected: int) -> None:
    assert _n_params(UNet().get_submodule(module)) == expected


def test_hybrid_block_counts_match_spec() -> None:
    qv = build_model("qvunet-1hq")
    full = build_model("qvunet-full-hq")
    quanv = build_model("quanvunet")
    assert count_parameters(qv.mid.res0) == (28_156, 168)
    assert count_parameters(build_model("qvunet-7hq").mid.res1) == (9_976, 1_176)
    assert _n_params(full.mid.res0) == 5_656
    assert count_parameters(quanv.downs[1].res0) == (1_756, 168)


def test_only_vertex_differs_between_unet_and_qvunet() -> None:
    """Transfer learning copies every key outside ``mid.``: those must agree in name and shape."""
    outside = {k: v.shape for k, v in UNet().state_dict().items() if not k.startswith("mid.")}
    qv = build_model("qvunet-1hq")
    assert {k: v.shape for k, v in qv.state_dict().items() if not k.startswith("mid.")} == outside
    quantum_keys = [k for k, _ in qv.named_parameters() if "circuits" in k]
    assert quantum_keys and all(k.startswith("mid.") for k in quantum_keys)


@pytest.mark.parametrize(
    ("name", "channels"), [("unet", 1), ("unet", 3), ("qvunet-1hq", 3), ("quanvunet", 3)]
)
def test_output_shape_follows_input_channels(name: str, channels: int) -> None:
    model = build_model(name, in_channels=channels)
    x, t = eps_inputs(TIMESTEPS, channels)
    out = model(x, t)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()


def test_unet_follows_input_dtype() -> None:
    model = UNet().double()
    x, t = eps_inputs(TIMESTEPS)
    assert model(x.double(), t).dtype == torch.float64


@pytest.mark.parametrize("size", [32, 64, 14])
def test_unsupported_image_size_is_rejected(size: int) -> None:
    with pytest.raises(ValueError, match="28"):
        UNet(image_size=size)
    with pytest.raises(ValueError, match="28"):
        build_model("qvunet-1hq", image_size=size)


def test_wrong_input_shape_is_rejected() -> None:
    model = UNet()
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(2, 1, 32, 32), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="timestep"):
        model(torch.randn(2, 1, 28, 28), torch.tensor([1, 2, 3]))


def test_unknown_name_and_semantics_are_rejected() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown model 'qvunet-3hq'; choose one of .*qvunet-full-hq"):
        build_model("qvunet-3hq")
    with pytest.raises(UnknownNameError, match=r"unknown semantics 'paper-ish'; choose one of paper, "):
        build_model("unet", semantics="paper-ish")


def test_model_table_lists_every_model_with_counts() -> None:
    table = format_model_table()
    for name, (total, quantum) in EXPECTED_COUNTS.items():
        row = next(line for line in table.splitlines() if line.startswith(name + " "))
        assert f"{total:,}" in row and f"{total - quantum:,}" in row


# --- reference-code vs paper semantics -------------------------------------------------------------


def _output_after_perturbing(name: str, semantics: str, parameter: str) -> tuple[torch.Tensor, torch.Tensor]:
    model = _build(name, semantics)
    x, t = eps_inputs(TIMESTEPS)
    with torch.no_grad():
        before = model(x, t)
        model.get_parameter(parameter).add_(0.37)
        after = model(x, t)
    return before, after


@pytest.mark.parametrize(
    ("name", "parameter"),
    [
        ("qvunet-1hq", "mid.res0.circuits_2.weights"),
        ("qvunet-full-hq", "mid.res1.basic_2.weights"),
        # Stage 2 reads x, and GroupNorm has one channel per group at this level, so the stage-1
        # quanvolution's output never reaches the block output in the reference code.
        ("quanvunet", "downs.1.res0.quanv_0.circuit.weights"),
    ],
)
def test_dead_parameters_only_in_reference_code_semantics(name: str, parameter: str) -> None:
    before, after = _output_after_perturbing(name, "reference-code", parameter)
    assert torch.equal(before, after)
    before, after = _output_after_perturbing(name, "paper", parameter)
    assert not torch.allclose(before, after, atol=1e-6)


def test_full_vertex_reference_code_reuses_first_basic_circuit() -> None:
    before, after = _output_after_perturbing("qvunet-full-hq", "reference-code", "mid.res1.basic_1.weights")
    assert not torch.allclose(before, after, atol=1e-6)


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_quanv_stage2_reads_block_input_only_in_reference_code(semantics: str) -> None:
    """Output channels 0..2 come from the stage-2 quanvolution (one channel per GroupNorm group): they see
    the time embedding only if that quanvolution reads the intermediate h."""
    torch.manual_seed(0)
    block = QuanResnetBlock(10, 40, ansatz="hqconv", semantics=semantics)
    x = torch.randn(2, 10, 4, 4)
    temb_a, temb_b = torch.randn(2, 2, 40).unbind(0)
    with torch.no_grad():
        out_a, out_b = block(x, temb_a), block(x, temb_b)
    quanv_unchanged = torch.equal(out_a[:, :3], out_b[:, :3])
    assert quanv_unchanged == (semantics == "reference-code")
    assert not torch.allclose(out_a[:, 3:], out_b[:, 3:])


def _gn_cancelled_biases(model: nn.Module) -> set[str]:
    """Conv biases feeding a GroupNorm with one channel per group are removed by the group mean:
    their gradient is mathematically zero, so they are excluded from the "every parameter learns" check."""
    names = set()
    for prefix, module in model.named_modules():
        norm = getattr(module, "norm_0", None)
        if isinstance(norm, nn.GroupNorm) and norm.num_groups == norm.num_channels:
            names.update(f"{prefix}.conv_{i}.bias" for i in (0, 1) if hasattr(module, f"conv_{i}"))
    return names


def _backward(name: str, semantics: str) -> nn.Module:
    model = _build(name, semantics)
    x, t = eps_inputs(TIMESTEPS)
    model(x, t).square().mean().backward()
    return model


def _live_quantum_angles(model: nn.Module) -> tuple[int, int]:
    circuits = [m for m in model.modules() if isinstance(m, PatchCircuit)]
    live = sum(int((m.weights.grad != 0).sum()) for m in circuits if m.weights.grad is not None)
    return live, sum(m.weights.numel() for m in circuits)


@pytest.mark.parametrize("name", ["qvunet-1hq", "qvunet-full-hq", "quanvunet"])
def test_gradients_reach_every_parameter_in_paper_semantics(name: str) -> None:
    model = _backward(name, "paper")
    excluded = _gn_cancelled_biases(model)
    dead = [
        k
        for k, p in model.named_parameters()
        if k not in excluded and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert dead == []
    assert not any("weights" in k for k in excluded)
    live, total = _live_quantum_angles(model)
    assert live == total == EXPECTED_COUNTS[name][1]  # every single angle, not just every tensor


@pytest.mark.parametrize(
    ("name", "live"),
    [
        ("qvunet-1hq", 24),  # measured on the reference: 12 live angles (of 84) in each stage-1 circuit
        ("qvunet-full-hq", 2 * (26 * 12 + 16)),  # 26 HQConv circuits x 12 + the shared basic set, per block
        ("quanvunet", 2 * 12 + 2 * 12),  # vertex stage-1 circuits + stage-2 quanvolutions
    ],
)
def test_reference_code_semantics_leaves_most_quantum_angles_without_gradient(name: str, live: int) -> None:
    assert _live_quantum_angles(_backward(name, "reference-code")) == (live, EXPECTED_COUNTS[name][1])


# --- layer details ---------------------------------------------------------------------------------


def test_upsample_2_to_7_uses_jax_nearest_index_map() -> None:
    x = torch.arange(2.0).view(1, 1, 1, 2).expand(1, 1, 2, 2)
    assert resize_nearest(x, 7)[0, 0, 0].tolist() == [0, 0, 0, 1, 1, 1, 1]
    y = torch.arange(7.0).view(1, 1, 1, 7).expand(1, 1, 7, 7)
    assert resize_nearest(y, 14)[0, 0, 0].tolist() == [i // 2 for i in range(14)]


def _qkv(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-pixel qkv as (B, heads, N, 32), channel index = part*128 + head*32 + d."""
    b, _, h, w = x.shape
    qkv = torch.einsum("oc,bcn->bon", module.to_qkv.weight[:, :, 0, 0], x.reshape(b, -1, h * w))
    return tuple(part.reshape(b, 4, 32, h * w).transpose(2, 3) for part in qkv.chunk(3, dim=1))


def test_full_attention_normalises_q_and_k_over_tokens() -> None:
    torch.manual_seed(0)
    attn = FullAttention(6)
    x = torch.randn(2, 6, 2, 2)
    q, k, v = _qkv(attn, x)

    def expected(norm_dim: int) -> torch.Tensor:
        qn, kn = F.normalize(q, dim=norm_dim), F.normalize(k, dim=norm_dim)
        out = ((qn @ kn.transpose(2, 3)) * 10).softmax(-1) @ v  # (B, heads, N, 32)
        out = out.transpose(2, 3).reshape(2, 128, 2, 2)
        return attn.to_out(out)

    got = attn(x)
    torch.testing.assert_close(got, expected(norm_dim=2), rtol=1e-5, atol=1e-6)  # tokens
    assert not torch.allclose(got, expected(norm_dim=3), atol=1e-4)  # features (cosine-sim) differs


def test_linear_attention_matches_direct_formula() -> None:
    torch.manual_seed(0)
    attn = LinearAttention(6)
    x = torch.randn(2, 6, 3, 5)
    q, k, v = _qkv(attn, x)
    q = q.softmax(-1) / math.sqrt(32)
    k = k.softmax(2)
    out = q @ (k.transpose(2, 3) @ (v / 15))  # (B, heads, N, 32)
    expected = attn.out_norm(attn.to_out(out.transpose(2, 3).reshape(2, 128, 3, 5)))
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-6)


def test_weight_standardisation_uses_population_variance() -> None:
    conv = WSConv2d(10, 4)
    w = conv.weight.detach()
    var = w.var(dim=(1, 2, 3), correction=0)
    ws = conv.standardized_weight().detach()
    torch.testing.assert_close(ws.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(ws.var(dim=(1, 2, 3), correction=0), var / (var + 1e-5))


def test_sinusoidal_embedding_sin_first_with_reference_frequencies() -> None:
    emb = SinusoidalEmbedding(10)(torch.tensor([0.0, 2.0]))
    assert emb[0].tolist() == [0.0] * 5 + [1.0] * 5
    freqs = torch.tensor([1.0, 1e-1, 1e-2, 1e-3, 1e-4])
    torch.testing.assert_close(emb[1], torch.cat([(2 * freqs).sin(), (2 * freqs).cos()]))


def test_initialisation_is_flax_lecun_normal() -> None:
    torch.manual_seed(0)
    model = UNet()
    w = model.ups[3].res0.conv_0.weight.detach()  # fan_in 70*9 = 630, 25,200 samples
    std = math.sqrt(1 / 630)
    assert abs(w.std().item() / std - 1) < 0.03
    assert w.abs().max().item() <= 2 * std / 0.87962566103423978
    assert all(not p.any() for k, p in model.named_parameters() if k.endswith("bias"))
    assert bool((model.mid.res0.norm_0.weight == 1).all())
    assert bool((model.downs[0].attn.norm.weight == 1).all())


def test_classical_twin_matches_the_circuit_it_replaces_in_shape_range_and_parameter_count() -> None:
    from hqdm.models.controls import PatchTwin
    from hqdm.quantum.circuits import ANGLES_PER_LAYER

    twin = PatchTwin(n_circuits=2)
    assert _n_params(twin) == 2 * 3 * ANGLES_PER_LAYER["hqconv"]  # 84 per circuit, as 3 HQConv layers
    x = torch.randn(5, 6, 2, 2) * 10
    z = twin(x)
    assert z.shape == x.shape and z.abs().max() <= 1
    # circuit i reads channels 3i..3i+2 only, like a circuit bank
    moved = x.clone()
    moved[:, 3:] += 1
    assert torch.equal(twin(moved)[:, :3], z[:, :3]) and not torch.equal(twin(moved)[:, 3:], z[:, 3:])
    assert count_parameters(build_model("qvunet-1hq-twin")) == (EXPECTED_COUNTS["qvunet-1hq"][0], 0)


def test_frozen_circuits_keep_their_initial_angles_while_the_rest_trains() -> None:
    torch.manual_seed(0)
    model = build_model("qvunet-1hq-frozen")
    classical, quantum = count_parameters(model)
    assert (classical + quantum, quantum) == EXPECTED_COUNTS["qvunet-1hq"]
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, t = eps_inputs(TIMESTEPS)
    model(x, t).square().mean().backward()
    optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    circuit_weights = {
        name for name in before if name.endswith("circuits_1.weights") or name.endswith("circuits_2.weights")
    }
    assert len(circuit_weights) == 4 and not changed & circuit_weights
    assert "mid.res0.conv_0.weight" in changed


def test_each_control_names_a_registered_hybrid_of_its_own_size() -> None:
    """The study pairs a control with the hybrid it names (claim 4): same total parameter count."""
    from hqdm.models.registry import control_for

    controls = {name: control_for(name) for name in list_models() if control_for(name)}
    assert controls == {"qvunet-1hq-twin": "qvunet-1hq", "qvunet-1hq-frozen": "qvunet-1hq"}
    for control, hybrid in controls.items():
        assert sum(count_parameters(build_model(control))) == EXPECTED_COUNTS[hybrid][0]
    assert control_for("unet") is None
