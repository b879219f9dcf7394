"""Experiments that chain the packages (compare, demo, bench, mitigations) and the ``cxr`` command."""
import os as _os

# OpenMP threads that wait by sleeping rather than spinning: beside one other busy program on
# 2 cores, spinning threads slowed a CycleGAN step about 3×, sleeping ones 1.6–1.8×, at a 4–14 %
# cost on an idle machine (docs/performance.md, "A busy machine"). It must be set before torch is imported;
# an OMP_WAIT_POLICY already in the environment wins, and CXR_OMP_WAIT=spin restores OpenMP's default.
if _os.environ.get("CXR_OMP_WAIT") == "spin":
    _os.environ.pop("OMP_WAIT_POLICY", None)
else:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
