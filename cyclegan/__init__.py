"""CycleGAN that turns normal chest X-rays (A) into synthetic covid ones (B).

Train with :func:`cyclegan.train.train` (settings: :func:`cyclegan.config.from_profile`), synthesise
with :func:`cyclegan.synth.synthesize`, or use ``cxr gan train | synth | bench``.
"""
