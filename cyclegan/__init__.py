"""CycleGAN between two domains of training chest X-rays: normal (A) → covid (B) by default, or any
pair of label/source filters (:mod:`cyclegan.domains`), e.g. one source's style → another's.

Entry points: :func:`from_profile` (settings), :func:`train_cyclegan` (:func:`cyclegan.train.train`),
:func:`synthesize`; or ``cxr gan train | synth | bench``.
"""
from runkit.entry_points import lazy_exports

ENTRY_POINTS = {"GANConfig": "cyclegan.config", "from_profile": "cyclegan.config",
                "train_cyclegan": "cyclegan.train:train", "synthesize": "cyclegan.synth"}
__all__ = list(ENTRY_POINTS)
__getattr__ = lazy_exports(__name__, ENTRY_POINTS)
