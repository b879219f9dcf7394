"""The lung segmenter's network: a U-Net (segmentation-models-pytorch) on timm's EfficientNet-Lite0.

segmentation-models-pytorch builds the U-Net's decoder and skip connections around any timm
encoder, so the encoder is timm's ``tf_efficientnet_lite0``, whose ImageNet weights install
offline (:func:`runkit.pretrained.lite0_file`). The encoder stops at stride 16 (112 channels): lung
fields are large, and the two deepest stages would add 2.2 M parameters for 8×8 features.
The input is one grayscale channel (the ImageNet stem's three colour filters summed), normalised
as the Lite0 port was trained (``(x - 0.5) / 0.5``).
"""
from __future__ import annotations

import torch
from torch import nn

from runkit.pretrained import LITE0_MEAN, LITE0_STD, lite0_file, lite0_to_timm, read_state_dict

ENCODER = "tf_efficientnet_lite0"
DEPTH = 4  # encoder stages used: strides 2, 4, 8, 16
KEPT_BLOCKS = 5  # timm stages 0-4 reach stride 16 with 112 channels
DECODER_CHANNELS = (64, 32, 16, 8)
MEAN, STD = LITE0_MEAN, LITE0_STD


class LungUNet(nn.Module):
    """``(B, 1, H, W)`` grayscale in [0, 1] → ``(B, 1, H, W)`` lung logits (H, W multiples of 16)."""

    def __init__(self):
        super().__init__()
        import segmentation_models_pytorch as smp

        self.unet = smp.Unet(f"tu-{ENCODER}", encoder_weights=None, encoder_depth=DEPTH,
                             decoder_channels=DECODER_CHANNELS, in_channels=1, classes=1)
        encoder = self.unet.encoder.model
        encoder.blocks = encoder.blocks[:KEPT_BLOCKS]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.unet((images - MEAN) / STD)


def imagenet_encoder_state(encoder: nn.Module) -> dict:
    """The Lite0 ImageNet weights under ``encoder``'s names, for its blocks only, with the stem's
    RGB filters summed into one grayscale filter (what timm does for ``in_chans=1``)."""
    import timm

    full = timm.create_model(ENCODER, pretrained=False)
    state = lite0_to_timm(read_state_dict(lite0_file()), full)
    wanted = encoder.state_dict()
    kept = {k: v for k, v in state.items() if k in wanted}
    kept["conv_stem.weight"] = state["conv_stem.weight"].sum(1, keepdim=True)
    return kept


def build_network(imagenet: bool = True) -> LungUNet:
    """A fresh network; its encoder starts from ImageNet when ``imagenet``."""
    network = LungUNet()
    if imagenet:
        encoder = network.unet.encoder.model
        encoder.load_state_dict(imagenet_encoder_state(encoder), strict=True)
    return network
