"""``hqdm bench``: every benchmark, each measurement in a fresh subprocess, ratios within one run.

* :mod:`~hqdm.bench.measure`: timing with peak memory, subprocesses, the machine line (shared by all);
* :mod:`~hqdm.bench.quantum`: the circuit engine against PennyLane and TorchQuantum, memory against depth;
* :mod:`~hqdm.bench.compute`: a training step of every model per path, sampler evaluations, FID features;
* :mod:`~hqdm.bench.workers`: one process with every core against one process per core;
* :mod:`~hqdm.bench.floor`: where a training step's time goes, and the matrix floor under it;
* :mod:`~hqdm.bench.results`: the raw JSON records and the markdown tables rendered from them.
"""
