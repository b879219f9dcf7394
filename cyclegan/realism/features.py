"""The fixed CXR feature network of the realism measures (Fréchet distance, precision and recall).

A small CNN trained here on the cxr3 training split to tell normal / covid / pneumonia (the epoch
chosen on validation accuracy); its 64-d global-pooled layer is the feature space, as Inception's
pool layer is FID's. The weights ship with the package (``cyclegan/assets/cxr_features_v1.pt``)
beside their SHA-256 (``cxr_features_v1.sha256``), and loading checks it, so that numbers from any
machine are on one network. ``cxr gan features-train`` rebuilds it; CPUs round differently, so a
rebuilt network is a new version with its own checksum, and numbers on two versions do not compare.

Optionally, torchvision's Inception-v3 (ImageNet weights) gives the standard FID features when
its weights file is in the torch hub cache; offline it is never downloaded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from cxrdata.manifest import sha256_of
from runkit.checkpoint import atomic_save, load
from runkit.rundir import write_bytes

ASSETS = Path(__file__).parents[1] / "assets"
DEFAULT_NETWORK = ASSETS / "cxr_features_v1.pt"
INPUT_SIZE = 128
WIDTHS = (16, 32, 64, 128)
FEATURES = 64
BATCH = 64
INCEPTION_FEATURES = 2048


class FeatureNetworkError(RuntimeError):
    """The feature network's file or checksum is missing or does not match."""


class CXRFeatureNet(nn.Module):
    """Four conv-BN-ReLU-pool stages (128 → 8 px), a 1×1 conv to 64 channels, global average pool;
    ``head`` classifies those 64 features into the three classes (training only)."""

    def __init__(self):
        super().__init__()
        layers, width = [], 1
        for out in WIDTHS:
            layers += [nn.Conv2d(width, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            width = out
        layers += [nn.Conv2d(width, FEATURES, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(FEATURES, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _prepare(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(N, S, S)`` → float ``(N, 1, size, size)``, roughly zero-mean unit-range."""
    x = torch.as_tensor(images).unsqueeze(1).float().div(255.0)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x - 0.5) / 0.25


def checksum_file(network: Path) -> Path:
    return network.with_suffix(".sha256")


def load_feature_network(path: Path | str = DEFAULT_NETWORK) -> tuple[CXRFeatureNet, str]:
    """The network at ``path`` (eval mode, CPU) and its SHA-256, after checking it against the
    ``.sha256`` file beside it."""
    path = Path(path)
    expected_file = checksum_file(path)
    if not path.is_file():
        raise FeatureNetworkError(f"{path}: the realism feature network is missing; rebuild it with "
                                  "`cxr gan features-train` (a new version) or restore it from git")
    if not expected_file.is_file():
        raise FeatureNetworkError(f"{expected_file}: the feature network's checksum file is missing; numbers "
                                  f"on an unverified network do not compare, so {path.name} is not used")
    expected = expected_file.read_text(encoding="utf-8").split()[0].strip().lower()
    actual = sha256_of(path)
    if actual != expected:
        raise FeatureNetworkError(f"{path}: sha256 {actual[:12]}… does not match {expected_file.name} "
                                  f"({expected[:12]}…); restore the file or rebuild both")
    net = CXRFeatureNet().float()  # float32 whatever torch's default dtype (the float64 tests change it)
    net.load_state_dict(load(path)["state_dict"])
    return net.eval(), actual


@torch.no_grad()
def cxr_features(net: CXRFeatureNet, images: np.ndarray) -> np.ndarray:
    """The 64-d features (float64) of uint8 ``(N, S, S)`` images."""
    out = [net.body(_prepare(images[i:i + BATCH], INPUT_SIZE)).double() for i in range(0, len(images), BATCH)]
    return torch.cat(out).numpy() if out else np.zeros((0, FEATURES))


def train_feature_network(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], out: Path,
                          *, epochs: int = 20, seed: int = 0, progress: bool = True) -> dict:
    """Train on ``train`` (uint8 images at :data:`INPUT_SIZE`, class indices), keep the epoch with the
    best ``val`` accuracy, save it atomically to ``out`` with its ``.sha256``; return its summary."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = CXRFeatureNet()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    x_train, y_train = _prepare(train[0], INPUT_SIZE), torch.as_tensor(train[1])
    x_val, y_val = _prepare(val[0], INPUT_SIZE), torch.as_tensor(val[1])
    best = {"val_accuracy": -1.0}
    for epoch in tqdm(range(1, epochs + 1), desc="feature network", unit="epoch", disable=not progress):
        net.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), 32):
            batch = order[start:start + 32]
            x = x_train[batch]
            flip = torch.rand(len(batch), generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = F.cross_entropy(net(x), y_train[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        net.eval()
        with torch.no_grad():
            accuracy = float((net(x_val).argmax(1) == y_val).float().mean())
        if accuracy > best["val_accuracy"]:
            best = {"val_accuracy": accuracy, "epoch": epoch,
                    "state_dict": {k: v.clone() for k, v in net.state_dict().items()}}
    summary = {"epochs": epochs, "seed": seed, "best_epoch": best["epoch"], "val_accuracy": best["val_accuracy"],
               "input_size": INPUT_SIZE, "features": FEATURES, "train_images": len(x_train), "val_images": len(x_val)}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save({"state_dict": best["state_dict"], "summary": summary}, out)
    write_bytes(checksum_file(out), f"{sha256_of(out)}  {out.name}\n".encode("utf-8"))
    return summary


def inception_weights_file() -> Path:
    """Where torchvision looks for Inception-v3's ImageNet weights (the torch hub cache)."""
    from torchvision.models import Inception_V3_Weights

    name = Inception_V3_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def load_inception() -> nn.Module | str:
    """Inception-v3 up to its 2048-d pool layer, or, when its weights file is absent, a sentence
    saying where to put it (nothing is downloaded)."""
    from torchvision.models import Inception_V3_Weights, inception_v3

    path = inception_weights_file()
    if not path.is_file():
        return (f"skipped: Inception-v3 ImageNet weights not found; to compute FID offline put "
                f"{Inception_V3_Weights.IMAGENET1K_V1.url} at {path}")
    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net.fc = nn.Identity()
    return net.eval()


@torch.no_grad()
def inception_features(net: nn.Module, images: np.ndarray) -> np.ndarray:
    """2048-d pool features (float64) of uint8 ``(N, S, S)`` images: grey copied to RGB, 299 px,
    ImageNet normalisation."""
    from torchvision.models import Inception_V3_Weights

    preset = Inception_V3_Weights.IMAGENET1K_V1.transforms()  # the weights' own normalisation
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (preset.mean, preset.std))
    out = []
    for i in range(0, len(images), 16):
        x = torch.as_tensor(images[i:i + 16]).unsqueeze(1).float().div(255.0)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
        out.append(net((x - mean) / std).double())
    return torch.cat(out).numpy()
