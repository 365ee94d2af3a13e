"""Experiments: checkpoint evaluation and reproductions of the papers' tables (see docs/reproduce.md).

Modules are imported on use (``hqdm.experiments.reproduce``, ``hqdm.experiments.evaluate_checkpoint``,
...) so that importing this package stays cheap.
"""
