#!/usr/bin/env bash
# Install TorchQuantum 0.1.8 into .peers/torchquantum, as a benchmark peer for `hqdm bench quantum`.
#
# TorchQuantum is never a dependency of hqdm: it lives in its own folder, which only the benchmark (and the
# test comparing its outputs with hqdm's) put on sys.path. The venv's own site-packages is never touched:
# every package goes in with `pip install --target .peers/torchquantum --no-deps`, and the script checks
# that the venv's package listing is unchanged afterwards.
#
# Why --no-deps and a hand-picked list: torchquantum 0.1.8 declares torchvision, tensorflow, pyscf,
# qiskit<1.0, torchpack (which itself declares torchvision, tensorpack, h5py) and more. torchvision and
# tensorflow would bring GPU wheels and gigabytes into a CPU-only project, and pip would replace the
# project's torch build to satisfy them; none of them is used by TorchQuantum's state-vector simulator.
# So this script installs only what the simulator core's import chain really executes:
#   torchquantum                  the package itself
#   opt_einsum                    imported by torchquantum.util.utils
#   torchpack + loguru, multimethod, toml
#                                 torchpack.utils.logging / .config, imported by every gate module
#   qiskit 0.46.3 (= qiskit-terra) + psutil, dill, stevedore, ply
#                                 qiskit.exceptions, imported by torchquantum.util.utils; the last release
#                                 before 1.0 (torchquantum requires <1.0), and it imports with this venv's
#                                 NumPy 2. symengine, which qiskit only uses when present, is left out.
# Two imports of that chain cannot be satisfied by a genuine package on this stack and are replaced by
# placeholders at load time (see load_torchquantum in benchmarks/peers/torchquantum_peer.py, the peer's
# code, which is not installed with hqdm): `qiskit_ibm_runtime` (the IBM cloud client,
# a large tree with compiled cryptography) and `qiskit.providers.aer...` (Aer's legacy namespace, removed
# before Aer supported NumPy 2), both used only by TorchQuantum's IBM-hardware and noise-model helpers,
# never by the simulator. TorchQuantum's own __init__ also imports its datasets (torchvision), pulse
# solvers and Qiskit plugins; the benchmark loads the simulator subpackages directly instead.
# torchvision, tensorflow and nvidia-* packages are never installed: the script fails if one appears.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=.peers/torchquantum
PYTHON=.venv/bin/python
PACKAGES=(
    "torchquantum==0.1.8"
    "opt_einsum==3.4.0"
    "torchpack==0.3.1"
    "loguru==0.7.3"
    "multimethod==2.1"
    "toml==0.10.2"
    "qiskit==0.46.3"
    "qiskit-terra==0.46.3"
    "psutil==7.2.2"
    "dill==0.4.1"
    "stevedore==5.10.0"
    "ply==3.11"
)

if [[ ! -x "$PYTHON" ]]; then
    echo "no $PYTHON: run scripts/setup.sh first" >&2
    exit 1
fi
site_packages=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
venv_before=$(ls "$site_packages" | sha1sum)

echo "installing into $TARGET (pip --target --no-deps, wheels only):"
printf '  %s\n' "${PACKAGES[@]}"
rm -rf "$TARGET"
mkdir -p "$TARGET"
"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: --no-compile \
    --target "$TARGET" "${PACKAGES[@]}"
# The torchquantum wheel also ships top-level `examples` and `test` packages (the latter would shadow the
# standard library's `test`); the simulator needs neither.
rm -rf "$TARGET/examples" "$TARGET/test" "$TARGET/bin"

forbidden=$(ls "$TARGET" | grep -Ei '^(torchvision|tensorflow|nvidia)' || true)
if [[ -n "$forbidden" ]]; then
    echo "refusing: forbidden packages appeared in $TARGET: $forbidden" >&2
    rm -rf "$TARGET"
    exit 1
fi
if [[ "$(ls "$site_packages" | sha1sum)" != "$venv_before" ]]; then
    echo "error: the venv's site-packages changed; it must not be touched" >&2
    exit 1
fi

echo "installed (size on disk):"
for dist in "$TARGET"/*.dist-info; do
    name=$(basename "$dist" .dist-info)
    size=$("$PYTHON" - "$dist" <<'EOF'
import os, sys
total = 0
with open(os.path.join(sys.argv[1], "RECORD")) as record:
    for line in record:
        path = os.path.join(os.path.dirname(sys.argv[1]), line.split(",")[0])
        if os.path.isfile(path):
            total += os.path.getsize(path)
print(f"{total / 2**20:.1f} MB")
EOF
)
    echo "  $name  $size"
done
echo "total: $(du -sh "$TARGET" | cut -f1) in $TARGET; venv site-packages unchanged"
OMP_WAIT_POLICY=passive "$PYTHON" benchmarks/peers/torchquantum_peer.py "$TARGET"
