"""CycleGAN settings: one dataclass, two profiles (``cpu`` default, ``paper``), each field
overridable one by one."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from runkit.device import PRECISIONS
from runkit.rundir import current_names, read_settings, register_added, register_renames, settings

from .domains import parse_filter
from .networks import UPSAMPLES

REGIONS = ("full", "lungs")  # what of each image both generators and both discriminators see
REFERENCE_LOAD_RATIO = 286 / 256  # the reference loads 286 px and random-crops 256 px
# The CycleGAN's settings took the classifier's words (2026-12-04): old run folders read as new ones.
register_renames({"manifest": "dataset", "size": "image_size"})
register_added("ngf", {"region": "full"})  # a run from before the lungs region (2026-12-07) saw whole images


@dataclass(frozen=True)
class GANConfig:
    """Everything that defines a CycleGAN run (saved as the run's ``config.json``)."""

    profile: str = "cpu"
    dataset: str = "cxr3"
    domain_a: str = "label=normal"
    domain_b: str = "label=covid"
    labels: str = ""
    region: str = "full"
    image_size: int = 96
    load_size: int = 0
    flip: bool = True
    ngf: int = 32
    n_blocks: int = 6
    upsample: str = "transpose"
    ndf: int = 64
    iterations: int = 800
    decay_fraction: float = 0.5
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = False
    log_every: int = 10
    sample_every: int = 100
    checkpoint_every: int = 100
    n_samples: int = 4
    realism_every: int = 200
    realism_images: int = 100

    def __post_init__(self):
        positive = ("image_size", "ngf", "ndf", "iterations", "batch_size", "log_every", "sample_every",
                    "checkpoint_every", "n_samples")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.image_size % 4 or self.image_size < 32:
            raise ValueError(f"image_size must be a multiple of 4 and at least 32, got {self.image_size}")
        if self.load_size and self.load_size < self.image_size:
            raise ValueError(f"load_size ({self.load_size}) must be 0 or at least image_size ({self.image_size})")
        if not 0 <= self.decay_fraction <= 1:
            raise ValueError(f"decay_fraction must be in [0, 1], got {self.decay_fraction}")
        if self.realism_every < 0 or self.realism_images < 0:
            raise ValueError("realism_every and realism_images must be >= 0")
        if self.n_blocks < 0 or self.pool_size < 0:
            raise ValueError("n_blocks and pool_size must be >= 0")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"beta1 and beta2 must be in [0, 1), got {self.beta1} and {self.beta2}")
        if self.lambda_cycle < 0 or self.lambda_identity < 0:
            raise ValueError("lambda_cycle and lambda_identity must be >= 0")
        for option, text in (("--domain-a", self.domain_a), ("--domain-b", self.domain_b)):
            parse_filter(text, option, self.labels)  # the syntax now; the images when they are read
        if self.upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLES)}, got {self.upsample!r}")
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {', '.join(REGIONS)}, got {self.region!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @property
    def effective_load_size(self) -> int:
        return self.load_size or round(self.image_size * REFERENCE_LOAD_RATIO)

    @property
    def decay_iterations(self) -> int:
        return round(self.iterations * self.decay_fraction)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "GANConfig":
        """The config a ``config.json`` or checkpoint holds, written by this code or an older one
        (renamed settings are read under today's names)."""
        values = settings(values)
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            raise ValueError(f"settings this code does not know: {', '.join(unknown)}")
        return cls(**values)

    def replace(self, **changes) -> "GANConfig":
        return dataclasses.replace(self, **changes)


# The CPU profile, from measurements on this 2-core machine (fp32, batch 1, one iteration = G step +
# D step, `cxr gan bench`, median of 3-5 after warm-up, another engineer's tests running beside):
# ngf 32, 6 blocks: 64 px 0.55-0.63 s, 96 px 0.92 s, 128 px 1.27-1.35 s per iteration;
# channels_last 0.93 s at 96 px and 1.47 s at 128 px, so it stays off. 96 px × 800 iterations
# ≈ 12 min of training, inside the 15-minute budget, with 1.5× the updates 128 px would allow
# (after the speed work in docs/results/2026-11-performance.md: 0.67-0.78 s at 96 px, ≈ 10 min);
# lungs, heart and ribs are visible at 96 px. Under heavy contention (a classifier training
# beside it) 2 threads took 4.3 s/iteration and OMP_NUM_THREADS=1 1.35 s: see the README.
# Upsampling by resize-convolution, chosen by realism (`make gan-variants`, 2 GAN seeds, 2026-12-01,
# docs/cyclegan.md): Fréchet distance 4.93 ± 0.41 against transposed convs' 7.50 ± 1.68 (floor
# 0.55), checkerboard 1.63 against 5.91 (real 1.41), 11 % more training time; 1200 iterations
# were no better (5.05 ± 1.05) for 48 % more. The paper profile keeps the reference's transposed convs.
PROFILES: dict[str, GANConfig] = {
    "cpu": GANConfig(upsample="resize"),
    "paper": GANConfig(profile="paper", image_size=256, ngf=64, n_blocks=9, iterations=5000, batch_size=1,
                       sample_every=250, checkpoint_every=250, realism_every=500),
}

HELP = {  # the `cxr gan train` option help, one per field but profile
    "dataset": "Manifest name (cxr3, makris2020) or CSV path; only its train split is read.",
    "domain_a": "Domain A: a filter over the training split, KEY=VALUE[,VALUE…] terms joined by ';', keys "
                "label and source (e.g. source=nih).",
    "domain_b": "Domain B, as --domain-a (e.g. 'source=ieee8023,figure1'). Domains that name different "
                "single labels make a label translation (synthetic images take B's label); otherwise "
                "every synthetic image keeps its parent's label.",
    "labels": "Restrict both domains to these labels, comma-separated (e.g. normal,pneumonia); empty: no "
              "restriction.",
    "region": "What the networks see: full (the whole image) or lungs (each image cropped to the square around "
              "its predicted lungs, dilated, and black outside them; generator outputs are confined to the lungs, so "
              "neither loss can use what lies outside; synthesis pastes the translated lungs back into the parent).",
    "image_size": "Training crop size in px (a multiple of 4, >= 32).",
    "load_size": "Size images are loaded at before the random crop; 0 = image_size × 286/256 as in "
                 "the reference.",
    "flip": "Random horizontal flips (note: they mirror anatomy).",
    "ngf": "Generator filters in the first layer.",
    "n_blocks": "Generator residual blocks.",
    "upsample": "Generator upsampling: transpose (stride-2 transposed convs, the reference) or resize "
                "(nearest-neighbour upsampling + 3×3 conv, no checkerboard imprint).",
    "ndf": "Discriminator filters in the first layer.",
    "iterations": "Training iterations (one batch from each domain each).",
    "decay_fraction": "Share of the iterations, at the end, over which the learning rate decays "
                      "linearly to 0.",
    "batch_size": "Images per domain per iteration.",
    "lr": "Adam learning rate.",
    "beta1": "Adam beta1.",
    "beta2": "Adam beta2.",
    "lambda_cycle": "Weight of the cycle-consistency L1 loss.",
    "lambda_identity": "Identity L1 weight, as a multiple of lambda_cycle.",
    "pool_size": "Image history buffer size for the discriminators (0 = off).",
    "seed": "Seed of initialisation, sampling and augmentation.",
    "device": "auto (CUDA if present), cpu, cuda or cuda:N.",
    "precision": "fp32, bf16 (autocast; CUDA, or CPUs with AMX or AVX512-BF16) or auto (CUDA mixed "
                 "precision; on CPUs fp32 until bf16 is the measured default: "
                 "docs/scaling.md, 'Precision and CPU speed').",
    "channels_last": "Use the channels_last memory format.",
    "log_every": "Write scalars every this many iterations.",
    "sample_every": "Write image grids every this many iterations.",
    "checkpoint_every": "Write checkpoint.pt every this many iterations.",
    "n_samples": "Fixed training images per domain in the image grids.",
    "realism_every": "Log realism to TensorBoard every this many iterations (and at the end): G_A's "
                     "translations of a fixed subset of domain A against domain B's images on the fixed CXR "
                     "feature network (Fréchet distance, precision, recall, with the real floor) and the "
                     "checkerboard score; 0 = off.",
    "realism_images": "Domain-A training images in that fixed subset (the Fréchet distance needs more "
                      "than 64 on each side).",
}

FIELDS = {f.name: f for f in dataclasses.fields(GANConfig)}


def from_run(config_file, **overrides) -> GANConfig:
    """The settings of a run's ``config.json`` with the given fields replaced (``None`` values are
    ignored): a new run that starts from a finished one's settings."""
    saved = read_settings(config_file)  # names the file itself when it is not a config
    try:
        given = current_names({k: v for k, v in overrides.items() if v is not None})
        return GANConfig.from_dict(saved).replace(**given)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{config_file}: {exc}") from None


def from_profile(name: str = "cpu", **overrides) -> GANConfig:
    """The profile ``name`` with the given fields replaced (``None`` values are ignored; renamed
    settings are accepted under their old names too)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    overrides = current_names(overrides)
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; valid: {', '.join(FIELDS)}")
    return PROFILES[name].replace(**{k: v for k, v in overrides.items() if v is not None})
