"""A batched state-vector simulator for RX- or RY-encoded circuits with a ``<Z>`` readout, in PyTorch.

One module per stage (see ``docs/performance.md`` for why each makes it fast, and measurements):

* :mod:`~hqdm.quantum.engine.plan`: compile a circuit once into fused *passes* (a dense unitary on a group
  of at most four wires per value of up to four control wires), split off independent parts, decide where
  the cluster stage ends and the memory layout of the full-state stage.
* :mod:`~hqdm.quantum.engine.unitaries`: the unitaries of all passes of one shape from the angles, together,
  once per call.
* :mod:`~hqdm.quantum.engine.clusters`: the cluster stage; passes on the small states of clusters of groups,
  then low-rank states (short sums of products) instead of the full state.
* :mod:`~hqdm.quantum.engine.readout`: ``<Z>`` from the clusters' Gram matrices, a last one-target pass read
  out as an observable instead of applied; backwards written out.
* :mod:`~hqdm.quantum.engine.fullstate`: deeper circuits on the batch-last full state, with an adjoint
  (uncompute) backward whose memory does not grow with depth.
* :mod:`~hqdm.quantum.engine.threads`: cache-sized chunks of (circuit, sample) pairs on a kept thread pool,
  forward and backward.
* :mod:`~hqdm.quantum.engine.run`: :func:`simulate`, which drives a plan through those stages.
* :mod:`~hqdm.quantum.engine.distribution`: :func:`output_distribution`, the same stages without the
  readout: every basis state's probability, for drawing shots.

Several independent circuits of the same structure (different weights, different inputs) run in one call
through the leading ``circuits`` dimension; the QVU-Net vertex uses this for its k circuits.
"""

from hqdm.quantum.engine.distribution import output_distribution
from hqdm.quantum.engine.plan import Plan, compile_circuit
from hqdm.quantum.engine.run import simulate

__all__ = ["Plan", "compile_circuit", "output_distribution", "simulate"]
