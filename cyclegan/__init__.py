"""CycleGAN between two domains of training chest X-rays: normal (A) → covid (B) by default, or any
pair of label/source filters (:mod:`cyclegan.domains`), e.g. one source's style → another's.

Train with :func:`cyclegan.train.train` (settings: :func:`cyclegan.config.from_profile`), synthesise
with :func:`cyclegan.synth.synthesize`, or use ``cxr gan train | synth | bench``.
"""
