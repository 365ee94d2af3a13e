"""hqdm's quantum engine vs PennyLane default.qubit: ``python benchmarks/quantum_layer.py [--help]``.

The same as ``hqdm bench quantum`` (also against TorchQuantum once scripts/install_torchquantum_peer.sh has
run); see docs/performance.md for measured tables.
"""

import sys

from hqdm.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "quantum", *sys.argv[1:]]))
