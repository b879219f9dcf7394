"""The image history buffer: the discriminator sees a mix of current and earlier fakes
(Shrivastava et al. 2017), which damps oscillation."""
from __future__ import annotations

import torch


class ImagePool:
    """Up to ``size`` earlier generated images.

    Until full, each new image is stored and returned. Then each image is, with probability
    1/2, swapped for a random stored one (which is returned), else returned as is. Randomness
    comes from the global torch RNG, so a checkpoint's RNG state makes resume exact.
    """

    def __init__(self, size: int = 50):
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """A batch like ``images`` drawn from the pool's history (``images`` itself when size 0)."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()) < 0.5:
                slot = int(torch.randint(self.size, ()))
                out.append(self.images[slot].clone())
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [image.cpu() for image in self.images]}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        if state["size"] != self.size:
            raise ValueError(f"image pool size differs: checkpoint {state['size']}, config {self.size}")
        self.images = [image.to(device) for image in state["images"]]
