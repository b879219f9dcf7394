"""The least-squares GAN loss (Mao et al. 2017) used by CycleGAN."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class LSGANLoss(nn.Module):
    """Mean squared error of a discriminator's patch scores to 1 (real) or 0 (fake).

    The targets are registered buffers, so they follow the module to its device.
    """

    def __init__(self, real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        self.register_buffer("real_label", torch.tensor(real_label))
        self.register_buffer("fake_label", torch.tensor(fake_label))

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = self.real_label if target_is_real else self.fake_label
        return F.mse_loss(prediction, target.to(prediction.dtype).expand_as(prediction))
