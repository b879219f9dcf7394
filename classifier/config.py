"""Classifier settings: one dataclass, two profiles, every field settable and checked."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from cxrdata import CLASSES
from cxrdata.lungs.regions import REGIONS
from runkit.device import PRECISIONS
from runkit.rundir import read_settings

from classifier.training.augment import AugmentSettings
from classifier.model.backbones import HEADS
from classifier.model.registry import BACKBONES

AUGS = ("v1", "v2", "v3", "v2+v3")
SELECTIONS = ("best-val", "last")
CAM_CLASSES = ("predicted", "true") + CLASSES
DEFAULT_SYNTH = "data/synthetic/cpu/manifest.csv"
DEFAULT_COUNTERFACTUAL = "data/counterfactual/cpu/manifest.csv"


class ConfigError(ValueError):
    """An unknown or out-of-range setting; the message names it and the accepted values."""


@dataclass
class ClassifierConfig:
    """Everything a training run depends on (saved as the run's config.json).

    A new run's settings come from a profile (:func:`make_config`, default ``cpu``); the field
    defaults below are what a setting means when a config.json written before it existed lacks it
    (a run from before ``region`` saw the whole image), so they stay as they were and are not a profile.
    """

    dataset: str = "cxr3"  # manifest name in data_manifests/ or a CSV path
    aug: str = "v1"  # v1: train split + classical augmentation; v2: v1 + synthetic covid images;
    # v3: v1 + counterfactual source translations (labels kept); v2+v3: both
    synth_manifest: str = DEFAULT_SYNTH  # v2: the synthesis run's manifest.csv
    counterfactual_manifest: str = DEFAULT_COUNTERFACTUAL  # v3: made by `cxr experiment counterfactual`
    counterfactual_per_class: int = 0  # v3: the set's first N images of each label; 0: all of them
    backbone: str = "resnet18"
    weights: str = "none"  # imagenet | none | path to a torchvision or timm state dict
    head: str = "linear"  # the new classifier head: linear | dropout | mlp64 (models.HEADS)
    image_size: int = 128
    batch_size: int = 32
    epochs: int = 12
    lr: float = 1e-3  # Adam; the head's (and, from scratch, every layer's) learning rate
    head_epochs: int = 10  # pretrained only: stage 1 epochs with the backbone frozen
    finetune_lr: float = 1e-5  # pretrained only: stage 2 learning rate of the unfrozen top blocks
    unfreeze_blocks: int = 2  # pretrained only: how many top backbone blocks stage 2 trains
    early_stopping: int = 0  # stop after this many epochs without a better val score (0: off)
    select: str = "best-val"  # the model kept: best-val (val accuracy, then loss) | last (the last epoch)
    weighted_sampling: bool = False  # draw training images with equal expected counts per class
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    hide_lungs: bool = False  # black out the central 70 % x 70 % square, 49 % of the image (box control)
    region: str = "full"  # what the model sees: full | lungs-removed | lungs-only | outline (cxrdata.lungs.regions)
    # shortcut mitigations (classifier/training/shortcuts.py; measured in docs/results/2026-11-generalisation.md)
    style_augment: bool = False  # random source-like restyling of training images
    equalize: bool = False  # per-image histogram equalisation in the model's input path
    source_balanced: bool = False  # within each class, draw every source equally often
    source_adversary: float = 0.0  # gradient-reversal weight of the class-conditional source adversary
    adversary_warmup: int = 2  # epochs over which that weight rises linearly to its value
    cross_source: bool = True  # also evaluate on corpus images from sources training lacks for a class
    cam_class: str = "predicted"  # class the test-set Grad-CAM overlays explain
    seed: int = 2020
    device: str = "auto"
    precision: str = "auto"  # fp32 | bf16 | auto (runkit.device); training only, evaluation follows auto
    profile: str = "cpu"

    def __post_init__(self):
        if isinstance(self.augment, dict):
            self.augment = AugmentSettings(**self.augment)
        self.validate()

    def validate(self) -> None:
        if self.aug not in AUGS:
            raise ConfigError(f"unknown aug {self.aug!r}; choose one of {', '.join(AUGS)}")
        if self.backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.weights not in ("imagenet", "none") and not Path(self.weights).is_file():
            raise ConfigError(f"weights {self.weights!r}: expected imagenet, none or an existing "
                              "state-dict file")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.head not in HEADS:
            raise ConfigError(f"unknown head {self.head!r}; choose one of {', '.join(HEADS)}")
        if self.region not in REGIONS:
            raise ConfigError(f"unknown region {self.region!r}; choose one of {', '.join(REGIONS)}")
        if self.select not in SELECTIONS:
            raise ConfigError(f"unknown select {self.select!r}; choose one of {', '.join(SELECTIONS)}")
        if self.cam_class not in CAM_CLASSES:
            raise ConfigError(f"unknown cam_class {self.cam_class!r}; choose one of {', '.join(CAM_CLASSES)}")
        for name in ("image_size", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.image_size < 32:
            raise ConfigError(f"image_size must be at least 32 px, got {self.image_size}")
        if self.source_adversary < 0:
            raise ConfigError(f"source_adversary must be >= 0, got {self.source_adversary}")
        for name in ("head_epochs", "unfreeze_blocks", "early_stopping", "adversary_warmup",
                     "counterfactual_per_class"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0 or self.finetune_lr <= 0:
            raise ConfigError("learning rates must be > 0")

    @property
    def pretrained(self) -> bool:
        return self.weights != "none"

    def run_name(self) -> str:
        """The default run folder name, e.g. ``cxr3-v1-efficientnet_lite0``."""
        stem = Path(self.dataset).stem
        return (f"{stem}-{self.aug.replace('+', '-')}-{self.backbone}" + ("-adversary" if self.source_adversary else "")
                + ("-lungs-hidden" if self.hide_lungs else "") + ("" if self.region == "full" else f"-{self.region}"))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ClassifierConfig":
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}")
        return cls(**values)


# The cpu profile's model, chosen over RESNET18_SCRATCH by `make choose-backbone` under a rule written
# before the runs (docs/reproduction.md): ImageNet EfficientNet-Lite0, the head alone for 3 epochs,
# then the top 4 blocks fine-tuned.
LITE0_IMAGENET = {"backbone": "efficientnet_lite0", "weights": "imagenet", "head_epochs": 3, "lr": 1e-3,
                  "unfreeze_blocks": 4, "finetune_lr": 1e-4}
# The cpu profile's model before that choice: resnet18 from random weights, every layer trained.
RESNET18_SCRATCH = {"backbone": "resnet18", "weights": "none", "head_epochs": 10, "lr": 1e-3,
                    "unfreeze_blocks": 2, "finetune_lr": 1e-5}

PROFILES: dict[str, dict] = {
    # Strong random framing (zoom ±30 %, shifts ±15 %) is the shortcut mitigation chosen in
    # docs/results/2026-11-generalisation.md; the lungs only (the lung segmenter's masks, the image cropped
    # to them) were chosen over the whole image by `make lungs-only` under its rule, written before the runs
    # and read on the validation split only (docs/results/2026-12-07-lungs.md).
    "cpu": {**LITE0_IMAGENET, "zoom": 0.3, "width_shift": 0.15, "height_shift": 0.15, "region": "lungs-only"},
    # VGG16 at 224 px with Zebin & Rezvy 2020's optimiser, batch and epochs, for a GPU; unlike the paper
    # (the new head only) it fine-tunes the top 3 blocks after 10 head epochs.
    "paper": {"backbone": "vgg16", "weights": "imagenet", "image_size": 224, "batch_size": 8,
              "epochs": 50, "lr": 1e-4, "head_epochs": 10, "finetune_lr": 1e-5, "unfreeze_blocks": 3},
}


def make_config(profile: str = "cpu", **overrides) -> ClassifierConfig:
    """The ``profile``'s settings with ``overrides`` (None values are ignored).

    Augmentation settings are given as ``rotation``, ``width_shift``, ``height_shift``,
    ``zoom`` and ``hflip`` (in a profile too).
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    given = {**PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}}
    aug_names = {f.name for f in dataclasses.fields(AugmentSettings)}
    try:
        augment = AugmentSettings(**{k: given.pop(k) for k in list(given) if k in aug_names})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return ClassifierConfig.from_dict({**given, "augment": augment, "profile": profile})


def from_run(config_file, **overrides) -> ClassifierConfig:
    """The settings of a run's ``config.json`` with ``overrides`` (None values are ignored): a new run
    that starts from a finished one's settings."""
    saved = read_settings(config_file)
    augment, profile = saved.pop("augment", {}), saved.pop("profile", "cpu")
    try:
        return make_config(profile, **{**saved, **augment, **{k: v for k, v in overrides.items() if v is not None}})
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{config_file}: {exc}") from None
