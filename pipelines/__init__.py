"""Experiments that chain the packages and the ``cxr`` command.

Entry points: :func:`run_compare` (v1 against v2 over seeds, with the audit), :func:`run_reproduction`
(a paper under its protocol, then audited), :func:`run_bench` (speed and memory); or ``cxr``.
"""
from runkit.entry_points import lazy_exports

ENTRY_POINTS = {"CompareConfig": "pipelines.experiment.compare", "run_compare": "pipelines.experiment.compare",
                "run_reproduction": "pipelines.studies.reproduction.runner", "run_bench": "pipelines.perf.bench"}
__all__ = list(ENTRY_POINTS)
__getattr__ = lazy_exports(__name__, ENTRY_POINTS)
