"""The quantum engine against an independent PennyLane implementation of docs/circuits.md."""

from __future__ import annotations

import math

import pennylane as qml
import pytest
import torch

from hqdm.quantum import PatchCircuit, Quanvolution, expvals, to_pennylane
from hqdm.registry import UnknownNameError

# ---------------------------------------------------------------------------------------------------
# Reference circuits written directly from the spec (not from hqdm's gate lists).


def _ref_hqconv_layer(theta, semantics: str) -> None:
    if semantics == "reference-code":
        qml.CRZ(theta[0], wires=[4, 8])
        qml.CRX(theta[1], wires=[4, 8])
        qml.CRZ(theta[2], wires=[0, 4])
        qml.CRX(theta[3], wires=[0, 4])
        return
    k = 0
    for first in (8, 4, 0):
        w = [first, first + 1, first + 2, first + 3]
        for c, t in ((w[0], w[3]), (w[3], w[2]), (w[2], w[1]), (w[1], w[0])):
            qml.CRZ(theta[k], wires=[c, t])
            qml.CRX(theta[k + 1], wires=[c, t])
            k += 2
    qml.CRZ(theta[24], wires=[4, 8])
    qml.CRX(theta[25], wires=[4, 8])
    qml.CRZ(theta[26], wires=[0, 4])
    qml.CRX(theta[27], wires=[0, 4])


def _ref_fqconv_layer(theta) -> None:
    k = 0
    for controlled, control in ((8, 0), (4, 8), (0, 4)):
        for gate in (qml.CRZ, qml.CRX):
            for j in (3, 2, 1, 0):
                gate(theta[k], wires=[control + j, controlled + j])
                k += 1


def reference_qnode(ansatz: str, semantics: str, dtype=torch.float64):
    n_wires = 4 if ansatz == "basic" else 12
    dev = qml.device("default.qubit", wires=n_wires)

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def circuit(x, weights):
        qml.AngleEmbedding(x, wires=range(n_wires), rotation="X")
        if ansatz == "basic":
            qml.BasicEntanglerLayers(weights, wires=range(4), rotation=qml.RX)
        else:
            for theta in weights:
                _ref_hqconv_layer(theta, semantics) if ansatz == "hqconv" else _ref_fqconv_layer(theta)
        return [qml.expval(qml.PauliZ(w)) for w in range(n_wires)]

    def run(x, weights):
        return torch.stack(circuit(x, weights), -1)

    return run


def _random_case(ansatz: str, layers: int, batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    n_wires, per_layer = (4, 4) if ansatz == "basic" else (12, 28 if ansatz == "hqconv" else 24)
    x = (torch.rand(batch, n_wires, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    w = torch.rand(layers, per_layer, generator=g, dtype=torch.float64) * 2 * math.pi
    probe = torch.randn(batch, n_wires, generator=g, dtype=torch.float64)
    return x, w, probe


def _value_and_grads(fn, x, w, probe):
    x = x.clone().requires_grad_()
    w = w.clone().requires_grad_()
    out = fn(x, w)
    gx, gw = torch.autograd.grad((out * probe.to(out.dtype)).sum(), [x, w])
    return out.detach().double(), gx.double(), gw.double()


CASES = [
    (ansatz, semantics, layers)
    for ansatz, variants in (
        ("hqconv", ("paper", "reference-code")),
        ("fqconv", ("paper",)),
        ("basic", ("paper",)),
    )
    for semantics in variants
    for layers in (1, 2, 3)
]


@pytest.mark.parametrize(("ansatz", "semantics", "layers"), CASES)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.complex128, 1e-10), (torch.complex64, 1e-5)])
def test_expvals_and_gradients_match_pennylane(ansatz, semantics, layers, dtype, tol):
    x, w, probe = _random_case(ansatz, layers, batch=6, seed=layers)
    ref = _value_and_grads(reference_qnode(ansatz, semantics), x, w, probe)
    real = torch.float64 if dtype == torch.complex128 else torch.float32

    def ours(xx, ww):
        return expvals(ansatz, xx.to(real), ww.to(real), semantics=semantics, dtype=dtype)

    got = _value_and_grads(ours, x, w, probe)
    for name, a, b in zip(("outputs", "input grads", "weight grads"), got, ref, strict=True):
        assert torch.allclose(a, b, atol=tol, rtol=0), f"{name}: max diff {(a - b).abs().max():.3g}"


@pytest.mark.parametrize(("ansatz", "semantics", "layers"), [c for c in CASES if c[2] in (1, 3)])
def test_pennylane_export_matches_reference_and_parameter_shift(ansatz, semantics, layers):
    x, w, probe = _random_case(ansatz, layers, batch=3, seed=10 + layers)
    n_wires = x.shape[1]
    dev = qml.device("default.qubit", wires=n_wires)
    apply = to_pennylane(ansatz, layers, semantics=semantics)

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def exported(xx, ww):
        apply(xx, ww)
        return [qml.expval(qml.PauliZ(i)) for i in range(n_wires)]

    def run_exported(xx, ww):
        return torch.stack(exported(xx, ww), -1)

    ref = _value_and_grads(reference_qnode(ansatz, semantics), x, w, probe)
    got = _value_and_grads(run_exported, x, w, probe)
    for a, b in zip(got, ref, strict=True):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)

    # parameter-shift gradients of the exported circuit (one sample, no broadcasting) equal hqdm's autograd
    @qml.qnode(dev, interface="torch", diff_method="parameter-shift")
    def shifted(xx, ww):
        apply(xx, ww)
        return [qml.expval(qml.PauliZ(i)) for i in range(n_wires)]

    w_ps = w.clone().requires_grad_()
    out = torch.stack(shifted(x[0], w_ps), -1)
    (gw_ps,) = torch.autograd.grad((out * probe[0]).sum(), [w_ps])
    w_ours = w.clone().requires_grad_()
    ours = expvals(ansatz, x[:1], w_ours, semantics=semantics, dtype=torch.complex128)
    (gw_ours,) = torch.autograd.grad((ours[0] * probe[0]).sum(), [w_ours])
    assert torch.allclose(gw_ps, gw_ours, atol=1e-9, rtol=0)


def test_reference_code_hqconv_leaves_untouched_wires_at_cos_x():
    x, w, _ = _random_case("hqconv", 3, batch=8, seed=3)
    out = expvals("hqconv", x, w, semantics="reference-code", dtype=torch.complex128)
    others = [i for i in range(12) if i not in (4, 8)]
    # exact up to floating-point rounding of the state-vector arithmetic
    assert torch.allclose(out[:, others], torch.cos(x[:, others]), atol=1e-13, rtol=0)
    # ... while wires 4 and 8 do depend on the weights
    moved = expvals("hqconv", x, w + 0.5, semantics="reference-code", dtype=torch.complex128)
    assert (moved[:, [4, 8]] - out[:, [4, 8]]).abs().max() > 1e-3
    assert torch.allclose(moved[:, others], out[:, others], atol=1e-13, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ansatz": "hqconv", "inputs": torch.zeros(2, 11), "weights": torch.zeros(3, 28)}, ValueError, "12"),
        ({"ansatz": "basic", "inputs": torch.zeros(2, 12), "weights": torch.zeros(4, 4)}, ValueError, "4"),
        ({"ansatz": "hqconv", "inputs": torch.zeros(2, 12), "weights": torch.zeros(3, 24)}, ValueError, "28"),
        ({"ansatz": "fqconv", "inputs": torch.zeros(2, 12), "weights": torch.zeros(72)}, ValueError, "24"),
        (
            {"ansatz": "hqconv2", "inputs": torch.zeros(2, 12), "weights": torch.zeros(3, 28)},
            UnknownNameError,
            "ansatz",
        ),
        (
            {
                "ansatz": "hqconv",
                "inputs": torch.zeros(2, 12),
                "weights": torch.zeros(3, 28),
                "semantics": "code",
            },
            UnknownNameError,
            "unknown semantics 'code'",
        ),
        (
            {"ansatz": "hqconv", "inputs": torch.full((2, 12), math.nan), "weights": torch.zeros(3, 28)},
            ValueError,
            "non-finite",
        ),
        (
            {"ansatz": "hqconv", "inputs": torch.zeros(2, 12), "weights": torch.full((3, 28), math.inf)},
            ValueError,
            "non-finite",
        ),
        (
            {
                "ansatz": "hqconv",
                "inputs": torch.zeros(2, 12, dtype=torch.long),
                "weights": torch.zeros(3, 28),
            },
            TypeError,
            "floating",
        ),
    ],
)
def test_bad_input_errors_name_the_problem(kwargs, error, match):
    with pytest.raises(error, match=match):
        expvals(**kwargs)


# ---------------------------------------------------------------------------------------------------
# Layers


@pytest.mark.parametrize(
    ("wire_order", "semantics"), [("channel-major", "paper"), ("pixel-major", "reference-code")]
)
def test_patch_circuit_wire_orders(wire_order, semantics):
    torch.manual_seed(0)
    layer = PatchCircuit(
        "hqconv", 3, wire_order=wire_order, semantics=semantics, sim_dtype=torch.complex128
    ).double()
    x = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    out = layer(x)
    # channel-major = NCHW flatten (channel, row, column); pixel-major = NHWC flatten (row, column, channel)
    wires = x.reshape(5, 12) if wire_order == "channel-major" else x.permute(0, 2, 3, 1).reshape(5, 12)
    z = expvals("hqconv", wires, layer.weights, semantics=semantics, dtype=torch.complex128)
    expected = (
        z.reshape(5, 3, 2, 2) if wire_order == "channel-major" else z.reshape(5, 2, 2, 3).permute(0, 3, 1, 2)
    )
    assert torch.allclose(out, expected, atol=1e-12)


def test_angle_scale_and_initialisation():
    torch.manual_seed(1)
    paper = PatchCircuit("fqconv", 3)
    code = PatchCircuit("fqconv", 3, angle_scale=2 * math.pi)
    assert paper.weights.shape == (3, 24)
    assert paper.weights.min() >= 0 and paper.weights.max() < 2 * math.pi and paper.weights.max() > 1.0
    assert code.weights.min() >= 0 and code.weights.max() < 1.0
    x = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    code = code.double()
    code.sim_dtype = torch.complex128
    z = expvals("fqconv", x.reshape(4, 12), code.weights * 2 * math.pi, dtype=torch.complex128)
    assert torch.allclose(code(x), z.reshape(4, 3, 2, 2), atol=1e-12)


def test_several_circuits_in_one_call_equal_separate_circuits():
    torch.manual_seed(2)
    bank = PatchCircuit("hqconv", 2, n_circuits=3, sim_dtype=torch.complex128).double()
    x = torch.randn(4, 9, 2, 2, dtype=torch.float64)
    out = bank(x)
    for i in range(3):
        z = expvals("hqconv", x[:, 3 * i : 3 * i + 3].reshape(4, 12), bank.weights[i], dtype=torch.complex128)
        assert torch.allclose(out[:, 3 * i : 3 * i + 3], z.reshape(4, 3, 2, 2), atol=1e-12)


def test_quanvolution_equals_a_loop_over_patches_and_propagates_gradients():
    torch.manual_seed(3)
    quanv = Quanvolution("hqconv", 3, sim_dtype=torch.complex128).double()
    x = torch.randn(2, 3, 6, 4, dtype=torch.float64, requires_grad=True)
    out = quanv(x)
    assert out.shape == x.shape
    for b in range(2):
        for i in range(0, 6, 2):
            for j in range(0, 4, 2):
                patch = x[b : b + 1, :, i : i + 2, j : j + 2].reshape(1, 12)
                z = expvals("hqconv", patch, quanv.weights, dtype=torch.complex128).reshape(3, 2, 2)
                assert torch.allclose(out[b, :, i : i + 2, j : j + 2], z, atol=1e-12)
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert quanv.weights.grad is not None and quanv.weights.grad.abs().sum() > 0


def test_basic_entangler_layer_on_one_channel():
    torch.manual_seed(4)
    layer = PatchCircuit("basic", 4, sim_dtype=torch.complex128).double()
    x = torch.randn(3, 1, 2, 2, dtype=torch.float64)
    z = expvals("basic", x.reshape(3, 4), layer.weights, dtype=torch.complex128)
    assert torch.allclose(layer(x), z.reshape(3, 1, 2, 2), atol=1e-12)
    with pytest.raises(ValueError, match=r"\(N, 1, 2, 2\)"):
        layer(torch.randn(3, 3, 2, 2))


def test_layers_reject_bad_options():
    with pytest.raises(ValueError, match="wire_order"):
        PatchCircuit("hqconv", 3, wire_order="row-major")
    with pytest.raises(ValueError, match="even"):
        Quanvolution("hqconv", 1)(torch.randn(1, 3, 5, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x, w, _ = _random_case("fqconv", 3, batch=16, seed=5)
    cpu = expvals("fqconv", x.float(), w.float())
    gpu = expvals("fqconv", x.float().cuda(), w.float().cuda())
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-5)


def test_independent_wire_sets_are_found_and_grouped():
    """FQConv is four 3-wire circuits; reference-code HQConv one 3-wire circuit and nine bare wires."""
    from hqdm.quantum.circuits import build_circuit
    from hqdm.quantum.components import components

    fq = components(build_circuit("fqconv", 2))
    assert [c.wires for c in fq] == [((0, 4, 8), (1, 5, 9), (2, 6, 10), (3, 7, 11))]
    assert fq[0].circuit.n_weights == 12
    assert fq[0].weights[0] == (3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 43, 47)  # wire 0's gates: angle 3 - j
    ref = components(build_circuit("hqconv", 3, semantics="reference-code"))
    assert [c.wires for c in ref] == [((0, 4, 8),), tuple((w,) for w in (1, 2, 3, 5, 6, 7, 9, 10, 11))]
    assert ref[1].circuit.gates == ()
    for ansatz in ("hqconv", "basic"):
        (whole,) = components(build_circuit(ansatz, 3))
        assert whole.wires == (tuple(range(whole.circuit.n_wires)),)


def test_circuit_of_unequal_independent_parts_matches_pennylane():
    """Parts of different sizes, a weight shared across parts, an unused weight, RY encoding, CNOTs."""
    from hqdm.quantum.circuits import Circuit, Gate
    from hqdm.quantum.engine import compile_circuit

    gates = (
        Gate("CRZ", (5, 0), 0),
        Gate("RY", (3,), 1),
        Gate("CRX", (0, 5), 2),
        Gate("CNOT", (1, 3)),
        Gate("RX", (4,), 0),  # weight 0 again, on another part
        Gate("CRX", (3, 1), 4),  # weight 3 is never used
        Gate("RZ", (1,), 5),
        Gate("RX", (2,), 5),  # wires 2 and 4 are alike: one part of two copies
    )
    circuit = Circuit(6, gates, 6, "parts", encoding="RY")
    assert len(compile_circuit(circuit).parts) == 3  # {0, 5}, {1, 3}, and {2}, {4} together
    expected = _assert_matches_pennylane(circuit, batch=7, seed=3)
    assert expected[2][3] == 0  # the unused weight


def _assert_matches_pennylane(circuit, batch: int, seed: int):
    """Values and gradients of hqdm's simulation of ``circuit`` against PennyLane's; returns PennyLane's."""
    from hqdm.quantum.engine import compile_circuit, simulate

    n = circuit.n_wires
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, n, generator=g, dtype=torch.float64) * 6 - 3
    w = torch.rand(circuit.n_weights, generator=g, dtype=torch.float64) * 6
    probe = torch.randn(batch, n, generator=g, dtype=torch.float64)
    apply = to_pennylane(circuit)

    @qml.qnode(qml.device("default.qubit", wires=n), interface="torch", diff_method="backprop")
    def reference(x, w):
        apply(x, w)
        return [qml.expval(qml.PauliZ(i)) for i in range(n)]

    def ours(x, w):
        return simulate(compile_circuit(circuit), x[None], w[None], dtype=torch.complex128)[0]

    expected = _value_and_grads(lambda x, w: torch.stack(reference(x, w), -1), x, w, probe)
    for a, b in zip(_value_and_grads(ours, x, w, probe), expected, strict=True):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)
    return expected


def test_a_last_one_target_pass_is_read_out_without_being_applied():
    """The last pass (target 5, controls 1 and 6 in two clusters, factoring) is folded into the readout;
    values and gradients still match PennyLane."""
    from hqdm.quantum.circuits import Circuit, Gate
    from hqdm.quantum.engine import compile_circuit

    gates = (
        *(Gate("CRX", (0, 1), 0), Gate("CRZ", (1, 2), 1), Gate("CRX", (2, 3), 2)),
        *(Gate("CRX", (4, 5), 3), Gate("CRX", (6, 7), 4), Gate("CRZ", (7, 4), 5), Gate("CRX", (2, 6), 6)),
        Gate("CRZ", (6, 0), 7),  # separates the last gates from the pass on wires 4-7
        *(Gate("CRZ", (1, 5), 8), Gate("CRX", (6, 5), 9), Gate("RY", (5,), 2)),
    )
    circuit = Circuit(8, gates, 10, "last-pass")
    (part,) = compile_circuit(circuit).parts
    assert part.plan.reads_last_pass
    assert (part.plan.cluster_passes[-1].block, part.plan.cluster_passes[-1].controls) == ((5,), (1, 6))
    _assert_matches_pennylane(circuit, batch=5, seed=4)
