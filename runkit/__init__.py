"""Run infrastructure shared by the model packages: devices and precision, seeds, run
directories with their config file, atomic checkpoints and interruption handling."""
