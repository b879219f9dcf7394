"""Run infrastructure shared by the model packages: devices and precision, seeds, run
directories with their config file, atomic checkpoints and interruption handling.

Entry points: :func:`runkit.rundir.open_run` and :class:`runkit.rundir.RunLock` (a run folder),
:func:`runkit.checkpoint.atomic_save` / :func:`runkit.checkpoint.load`, :func:`runkit.device.pick_device`,
:func:`runkit.seed.seed_everything`. It imports nothing on its own: ``cxr`` sets OpenMP's policy
(:mod:`runkit.openmp`) before torch loads.
"""
