"""Training a classifier run: its splits, augmentation, shortcut mitigations, the source adversary and the loop."""
