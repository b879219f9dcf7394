"""Experiments that chain the packages (compare, demo, bench, mitigations) and the ``cxr`` command."""
