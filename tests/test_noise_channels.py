"""Noisy circuits against PennyLane's ``default.mixed``: depolarising and amplitude damping after every gate
(placed by PennyLane's own ``add_noise``, not by hqdm), bit-flip readout, on hqdm's exported circuits.

A density matrix of 12 qubits takes PennyLane minutes, so 12-qubit ansatzes are checked part by part: FQConv
and reference-code HQConv split into independent 3-wire parts (and bare wires) that noise keeps independent,
and each part's exported circuit is compared with hqdm's evaluation of the *whole* circuit at those wires.
The connected 12-qubit paper HQConv is compared whole in a slow test (minutes: ``pytest -m slow``).
"""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
import torch

from hqdm.quantum import to_pennylane
from hqdm.quantum.circuits import Circuit, build_circuit, chen_circuit
from hqdm.quantum.components import components
from hqdm.quantum.measurement import Measurement, measured_expvals
from hqdm.quantum.noise_levels import NOISE_LEVELS
from hqdm.quantum.noise_model import NoiseModel

NOISE = NoiseModel(depolarizing=0.03, amplitude_damping=0.08, readout=0.02)
GATES = ["RX", "RY", "RZ", "CRX", "CRZ", "CNOT"]


def pennylane_noisy_expvals(circuit: Circuit, x: np.ndarray, w: np.ndarray, noise: NoiseModel) -> np.ndarray:
    """(batch, n) <Z_i> from default.mixed: after every gate each of its wires gets PennyLane's
    DepolarizingChannel then AmplitudeDamping, and before readout a BitFlip."""
    n = circuit.n_wires
    apply = to_pennylane(circuit)

    def after_gate(op, **_):
        for wire in op.wires:
            qml.DepolarizingChannel(noise.depolarizing, wires=wire)
            qml.AmplitudeDamping(noise.amplitude_damping, wires=wire)

    @qml.qnode(qml.device("default.mixed", wires=n))
    def run(inputs, weights):
        apply(inputs, weights)
        for wire in range(n):
            qml.BitFlip(noise.readout, wires=wire)
        return [qml.expval(qml.PauliZ(wire)) for wire in range(n)]

    noisy = qml.add_noise(run, qml.NoiseModel({qml.noise.op_in(GATES): after_gate}))
    return np.array([noisy(row, w) for row in x]).reshape(len(x), n)


def _case(circuit: Circuit, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, circuit.n_wires, generator=g, dtype=torch.float64) * 6 - 3
    w = torch.rand(circuit.n_weights, generator=g, dtype=torch.float64) * 6
    return x, w


def hqdm_noisy_expvals(circuit: Circuit, x, w, noise: NoiseModel, method: str = "density") -> torch.Tensor:
    measurement = Measurement(noise=noise, method=method)
    return measured_expvals(circuit, x[None], w[None], measurement, dtype=torch.complex128)[0]


CIRCUITS = [
    pytest.param(build_circuit(ansatz, layers, semantics=semantics), id=f"{ansatz}-{semantics}-{layers}")
    for ansatz, semantics in (("basic", "paper"), ("fqconv", "paper"), ("hqconv", "reference-code"))
    for layers in (1, 2)
] + [
    pytest.param(chen_circuit(5, layers, semantics=semantics), id=f"chen-{semantics}-{layers}")
    for semantics in ("paper", "reference-code")
    for layers in (1, 2)
]


@pytest.mark.parametrize("circuit", CIRCUITS)
def test_noisy_expectations_match_default_mixed(circuit: Circuit) -> None:
    x, w = _case(circuit, batch=3, seed=circuit.n_weights)
    ours = hqdm_noisy_expvals(circuit, x, w, NOISE).numpy()
    checked = 0
    for part in components(circuit):
        for wires, weights in zip(part.wires, part.weights, strict=True):
            if checked >= 6:  # two alike parts say no more than one
                break
            expected = pennylane_noisy_expvals(
                part.circuit, x[:, wires].numpy(), w[list(weights)].numpy(), NOISE
            )
            np.testing.assert_allclose(ours[:, wires], expected, atol=1e-6, rtol=0)
            checked += len(wires)
    noiseless = hqdm_noisy_expvals(circuit, x, w, NoiseModel()).numpy()
    assert np.abs(ours - noiseless).max() > 0.01  # the noise really changes the values


@pytest.mark.parametrize(
    "strong",  # jumps in most trajectories; each channel alone takes its own path (depolarising alone
    # at 0.2 would leave every <Z> near 0, where a wrong simulation could hide)
    [
        NoiseModel(depolarizing=0.2, amplitude_damping=0.3),
        NoiseModel(depolarizing=0.03),
        NoiseModel(amplitude_damping=0.3),
    ],
    ids=["both", "depolarizing", "damping"],
)
def test_trajectories_average_to_the_density_matrix(strong: NoiseModel) -> None:
    """Quantum-jump trajectories (one per row) scatter around PennyLane's noisy value: mean within 5
    standard errors for every wire; the trajectory method is what large noisy circuits use."""
    circuit = build_circuit("basic", 2)
    x, w = _case(circuit, batch=1, seed=11)
    expected = pennylane_noisy_expvals(circuit, x.numpy(), w.numpy(), strong)[0]
    runs = 20000
    measurement = Measurement(noise=strong, method="trajectories", trajectories=1)
    gen = torch.Generator().manual_seed(12)
    z = measured_expvals(circuit, x.expand(runs, -1)[None], w[None], measurement, generator=gen)[0].double()
    error = z.std(0) / runs**0.5
    assert np.all(np.abs(z.mean(0).numpy() - expected) <= 5 * error.numpy())
    assert float(z.std(0).min()) > 0.01  # trajectories do differ


def test_many_trajectories_of_a_circuit_are_independent() -> None:
    """With 16 trajectories a circuit (one shared state until trajectories jump away from it), the
    estimates still average to PennyLane's value and scatter like the mean of 16 independent single
    trajectories: std x sqrt(16) within 15 % of the single trajectories' std. Two inputs alternate in the
    batch, so a trajectory that took another circuit's angles would be seen."""
    circuit = build_circuit("basic", 2)
    x, w = _case(circuit, batch=2, seed=11)
    moderate = NoiseModel(depolarizing=0.02, amplitude_damping=0.03)  # some trajectories never jump
    expected = pennylane_noisy_expvals(circuit, x.numpy(), w.numpy(), moderate)
    gen = torch.Generator().manual_seed(14)

    def estimates(trajectories: int, runs: int) -> torch.Tensor:
        """(runs, 2, wires): ``runs`` estimates for each of the two inputs."""
        measurement = Measurement(noise=moderate, method="trajectories", trajectories=trajectories)
        z = measured_expvals(circuit, x.repeat(runs, 1)[None], w[None], measurement, generator=gen)[0]
        return z.double().view(runs, 2, -1)

    single, grouped = estimates(1, 20000), estimates(16, 4000)
    error = grouped.std(0) / 4000**0.5
    assert np.all(np.abs(grouped.mean(0).numpy() - expected) <= 5 * error.numpy())
    ratio = (grouped.std(0) * 16**0.5 / single.std(0)).numpy()
    assert np.all((ratio > 0.85) & (ratio < 1.15)), ratio


@pytest.mark.slow
def test_connected_12_qubit_hqconv_matches_default_mixed() -> None:
    circuit = build_circuit("hqconv", 1)
    x, w = _case(circuit, batch=1, seed=13)
    expected = pennylane_noisy_expvals(circuit, x.numpy(), w.numpy(), NOISE)
    np.testing.assert_allclose(hqdm_noisy_expvals(circuit, x, w, NOISE).numpy(), expected, atol=1e-6, rtol=0)


@pytest.mark.slow
def test_trajectories_match_the_density_matrix_of_the_12_qubit_hqconv_at_a_published_level() -> None:
    """What a noise cell of ``hqdm hardware measure`` runs: the 12-qubit paper HQConv at the Sycamore level,
    32 trajectories a circuit, against hqdm's exact density matrix (checked against PennyLane above):
    within 5 standard errors on every wire, while the noise moves <Z> by many standard errors."""
    circuit = build_circuit("hqconv", 1)
    x, w = _case(circuit, batch=1, seed=13)
    level = NOISE_LEVELS["sycamore-2019"]
    exact = hqdm_noisy_expvals(circuit, x, w, level)[0]
    runs = 100
    measurement = Measurement(noise=level, method="trajectories", trajectories=32)
    gen = torch.Generator().manual_seed(15)
    z = measured_expvals(circuit, x.expand(runs, -1)[None], w[None], measurement, generator=gen)[0].double()
    error = z.std(0) / runs**0.5
    assert torch.all((z.mean(0) - exact).abs() <= 5 * error)
    noiseless = hqdm_noisy_expvals(circuit, x, w, NoiseModel())[0]
    assert float(((noiseless - exact).abs() / error).max()) > 10


@pytest.mark.parametrize("level", ["sycamore-2019", "h2-2023"])
def test_expected_rows_predicts_how_many_states_trajectories_end_with(level: str, monkeypatch) -> None:
    """Trajectory chunks are sized by ``expected_rows``: on the models' 3-layer HQConv it must be within
    15 % of the distinct states the circuits actually end with (measured over 32 circuits)."""
    from hqdm.quantum import trajectories

    ended: list[float] = []
    probabilities = trajectories._Rows.probabilities

    def counted(rows, circuits: int) -> torch.Tensor:
        ended.append(rows.used / circuits)
        return probabilities(rows, circuits)

    monkeypatch.setattr(trajectories._Rows, "probabilities", counted)
    circuit = build_circuit("hqconv", 3)
    x, w = _case(circuit, batch=32, seed=16)
    noise = NOISE_LEVELS[level]
    measured_expvals(
        circuit, x[None], w[None], Measurement(noise=noise), generator=torch.Generator().manual_seed(3)
    )
    observed = sum(ended) / len(ended)
    assert abs(trajectories.expected_rows(circuit, noise, 32) / observed - 1) < 0.15, (observed, ended)


def test_trajectory_chunks_draw_the_same_on_one_thread_as_on_two(monkeypatch) -> None:
    """Chunks of circuits run on parallel threads, each drawing from a generator seeded from the caller's
    in chunk order: a seed gives the same values on one thread and on two; another seed, other values."""
    from hqdm.quantum import measurement as measurement_module

    monkeypatch.setattr(measurement_module, "TRAJECTORY_CHUNK_ENTRIES", 1 << 13)  # one circuit a chunk
    circuit = build_circuit("hqconv", 1)
    x, w = _case(circuit, batch=12, seed=17)
    noisy = Measurement(noise=NoiseModel(depolarizing=0.02, amplitude_damping=0.03), method="trajectories")
    threads = torch.get_num_threads()

    def values(seed: int, on_threads: int) -> torch.Tensor:
        torch.set_num_threads(on_threads)
        try:
            gen = torch.Generator().manual_seed(seed)
            return measured_expvals(circuit, x[None], w[None], noisy, generator=gen)
        finally:
            torch.set_num_threads(threads)

    one = values(5, 1)
    assert torch.equal(one, values(5, 2))
    assert not torch.equal(one, values(6, 2))
