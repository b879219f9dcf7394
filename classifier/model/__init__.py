"""The classifier network: backbones with a new head, and their pretrained weights."""
