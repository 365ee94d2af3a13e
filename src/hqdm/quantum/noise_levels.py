"""Two published hardware error levels, mapped onto :class:`~hqdm.quantum.noise_model.NoiseModel`, and a
control readout that removes the circuits (:data:`RANDOM_READOUT`).

hqdm's CRZ/CRX gates each compile to two native two-qubit gates plus single-qubit rotations, and the noise
model applies one depolarising rate to each wire of each gate. Taking the device's two-qubit Pauli error as
that per-wire rate gives a CRZ/CRX about twice the native gate's error, split over its two wires. The
single-qubit encoding rotations get the same rate, which overstates their (ten times smaller) error:
both levels err on the noisy side.

* ``sycamore-2019``: Google Sycamore, Arute et al., Nature 574, 505 (2019), Fig. 2: simultaneous two-qubit
  Pauli error 0.62 %, simultaneous readout error 3.8 %; amplitude damping from the two 12 ns two-qubit
  gates of one hqdm gate against T1 of about 16 us (1 - exp(-24 ns / 16 us) = 1.5e-3).
* ``h2-2023``: Quantinuum H2, Moses et al., Phys. Rev. X 13, 041052 (2023) (arXiv:2305.03828): average
  two-qubit gate infidelity 1.84e-3, state preparation and measurement error 1.6e-3; no amplitude
  damping (hyperfine qubits whose T1 far exceeds the circuit's duration).
"""

from __future__ import annotations

from hqdm.quantum.noise_model import NoiseModel, parse_noise

NOISE_LEVELS = {
    "sycamore-2019": NoiseModel(depolarizing=6.2e-3, amplitude_damping=1.5e-3, readout=3.8e-2),
    "h2-2023": NoiseModel(depolarizing=1.84e-3, amplitude_damping=0.0, readout=1.6e-3),
}


#: Not hardware: every bit read as a fair coin, so every ``<Z>`` is 0 whatever the circuit computed. Read
#: this way a model's circuits contribute nothing: a model whose samples do not change under it does not
#: use its circuits, and then no shot count or noise level can be said to matter for it.
RANDOM_READOUT = "random-readout"
#: the named readouts of ``--noise``: the hardware levels and the control
READOUT_LEVELS = {**NOISE_LEVELS, RANDOM_READOUT: NoiseModel(readout=0.5)}


def noise_from_text(text: str) -> NoiseModel | None:
    """``none`` -> None, a name of :data:`READOUT_LEVELS`, or ``KEY=RATE,...`` (:func:`parse_noise`)."""
    if text == "none":
        return None
    return READOUT_LEVELS[text] if text in READOUT_LEVELS else parse_noise(text)
