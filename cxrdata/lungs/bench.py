"""Speed of the lung segmenter on the current device: training and segmentation images/s."""
from __future__ import annotations

import torch

from runkit.device import pick_device
from runkit.timing import timed

from .network import build_network
from .training import SegmenterSettings, loss_of

CORPUS_IMAGES = 1754


def bench_segmenter(size: int = 256, batch_size: int = 8, segment_batch: int = 16, reps: int = 3,
                    warmup: int = 1) -> dict:
    """Median training step and segmentation batch over ``reps`` after ``warmup``, random images,
    the shipped architecture (channels-last, as the trainer and the segmenter run it)."""
    device = pick_device()
    network = build_network(imagenet=False).to(device, memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(network.parameters(), lr=SegmenterSettings.lr)
    images = torch.rand(batch_size, 1, size, size, device=device).contiguous(memory_format=torch.channels_last)
    masks = (torch.rand(batch_size, 1, size, size, device=device) > 0.5).float()
    many = torch.rand(segment_batch, 1, size, size, device=device).contiguous(memory_format=torch.channels_last)

    def train_step():
        network.train()
        loss = loss_of(network(images), masks)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    @torch.no_grad()
    def segment_step():
        network.eval()
        network(many)

    train, segment = timed(train_step, reps, warmup, device), timed(segment_step, reps, warmup, device)
    return {"size": size, "train_images_per_s": batch_size / train["median"], "train": train,
            "segment_images_per_s": segment_batch / segment["median"], "segment": segment,
            "corpus_minutes": CORPUS_IMAGES / (segment_batch / segment["median"]) / 60}
