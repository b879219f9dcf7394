"""The CycleGAN networks: a ResNet generator and a 70×70 PatchGAN discriminator (Zhu et al. 2017)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

INIT_STD = 0.02


def instance_norm(channels: int) -> nn.Module:
    """Instance norm without affine parameters, written as group norm with one channel per group:
    the same function (no parameters, so checkpoints are unchanged), but with a native
    channels_last kernel where ``InstanceNorm2d`` copies to contiguous and back."""
    return nn.GroupNorm(channels, channels, affine=False)


class SingleOutputConv2d(nn.Conv2d):
    """A stride-1 convolution to one output channel, computed on CPU as a matrix product to one
    plane per kernel tap, which ``fold`` (col2im) then sums into place: the same function and
    parameters, but ~2× faster here, where oneDNN's direct kernels for one output channel run at
    a tenth of the matmul rate (docs/results/2026-11-performance.md). On CUDA the usual kernel runs."""

    def __init__(self, in_channels: int, kernel_size: int, padding: int = 0):
        super().__init__(in_channels, 1, kernel_size, padding=padding)

    def _conv_forward(self, x, weight, bias):
        if x.is_cuda:
            return super()._conv_forward(x, weight, bias)
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        x = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x
        n, c, h, w = x.shape
        taps = weight[0].flip(1, 2).reshape(c, kh * kw).t()  # flipped: fold adds where conv reads
        planes = torch.matmul(taps, x.reshape(n, c, h * w))
        out = F.fold(planes, (h - kh + 1, w - kw + 1), (kh, kw), padding=(kh - 1, kw - 1))
        return out + bias.view(1, 1, 1, 1)


class ResidualBlock(nn.Module):
    """Two reflect-padded 3×3 convs with instance norm, added to the input."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), instance_norm(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), instance_norm(channels))

    def forward(self, x):
        return x + self.body(x)


UPSAMPLES = ("transpose", "resize")


def upsampling(in_channels: int, out_channels: int, kind: str) -> list[nn.Module]:
    """Twice the size: a stride-2 transposed conv (the reference), or ``resize``: nearest-neighbour
    upsampling then a reflect-padded 3×3 conv (Odena et al. 2016), which cannot imprint the
    checkerboard that the transposed conv's uneven overlap does."""
    if kind == "transpose":
        return [nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)]
    if kind == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                nn.Conv2d(in_channels, out_channels, 3)]
    raise ValueError(f"upsample must be one of {', '.join(UPSAMPLES)}, got {kind!r}")


class ResnetGenerator(nn.Module):
    """7×7 conv → two stride-2 convs → ``n_blocks`` residual blocks at 4·``ngf`` channels →
    two upsamplings (transposed convs, or ``upsample="resize"``) → 7×7 conv → tanh. Input and
    output in [-1, 1]."""

    def __init__(self, channels: int = 1, ngf: int = 64, n_blocks: int = 9, upsample: str = "transpose"):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), instance_norm(ngf), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                       instance_norm(ngf * mult * 2), nn.ReLU(True)]
        layers += [ResidualBlock(ngf * 4) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [*upsampling(ngf * mult, ngf * mult // 2, upsample), instance_norm(ngf * mult // 2),
                       nn.ReLU(True)]
        last = SingleOutputConv2d(ngf, 7) if channels == 1 else nn.Conv2d(ngf, channels, 7)
        layers += [nn.ReflectionPad2d(3), last, nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """4×4 convs ``ndf``→2·→4·→8·``ndf``→1 with LeakyReLU 0.2: one real/fake score per 70×70 patch."""

    def __init__(self, channels: int = 1, ndf: int = 64):
        super().__init__()
        leaky = dict(negative_slope=0.2, inplace=True)
        layers = [nn.Conv2d(channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(**leaky)]
        for mult, stride in ((1, 2), (2, 2), (4, 1)):
            layers += [nn.Conv2d(ndf * mult, ndf * mult * 2, 4, stride=stride, padding=1),
                       instance_norm(ndf * mult * 2), nn.LeakyReLU(**leaky)]
        layers += [SingleOutputConv2d(ndf * 8, 4, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def init_weights(net: nn.Module, std: float = INIT_STD) -> nn.Module:
    """Conv weights ~ N(0, ``std``), biases 0 (the reference "normal" init)."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, std)
            nn.init.zeros_(module.bias)
    return net


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
