"""Each paper's protocol as one declarative profile (``../shared/docs/papers.md`` has the sources).

``classifier`` holds :class:`classifier.config.ClassifierConfig` settings, so the protocol runs
through the same trainer as every other run. ``decided`` lists what the paper leaves open and this
profile chose; ``deviations`` what differs from the paper and why. Both go into the report.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Protocol:
    paper: str
    citation: str
    pool: str  # which corpus images: see splits.POOLS
    split: str  # image-holdout (random test share per image, then optional folds of train) | image-folds
    stratified: bool
    test_share: float  # image-holdout: the test share; image-folds: 0
    folds: int  # image-holdout: CV folds of the training part (0: none); image-folds: folds in all
    classifier: dict  # ClassifierConfig settings of the protocol
    figures: dict  # the paper's reported numbers (fractions), as papers.md gives them
    decided: tuple[str, ...] = ()
    deviations: tuple[str, ...] = ()
    synthetic: int = 0  # v2: synthetic covid images added (0: no v2)
    replicates: int = 3  # cpu-profile replicates: seeds of the split, or the first CV folds (all with --profile paper)
    second_test: str = ""  # a pool evaluated as a second test set by the protocol's model
    progression_patient: str = ""  # ieee8023 patient for the progression Grad-CAM figure

    @property
    def cv_replicates(self) -> int:
        """The folds that can be replicates (image-folds validates on its last); 0 without CV."""
        return self.folds - 1 if self.split == "image-folds" else self.folds


# What every profile does differently from every paper.
LOADING = ("images are centre-cropped to a square, then resized (the papers' Keras loaders resize the whole image, "
           "changing its aspect)",
           "rotations and shifts fill the uncovered corners with black (Keras fills them with the nearest pixel)")
BACTERIAL = ("all 142 paediatric pneumonia images of the corpus are bacterial (person*_bacteria_*); the paper used "
             "viral and bacterial pneumonia, and viral pneumonia is the one that resembles covid, so this task is "
             "likely easier than the paper's")

# Head only on a frozen ImageNet body, on the whole image: every paper. finetune_lr is unused then; it
# and the region are pinned so that a protocol does not follow the classifier's cpu profile.
FROZEN = {"weights": "imagenet", "unfreeze_blocks": 0, "finetune_lr": 1e-5, "region": "full"}

PROTOCOLS: dict[str, Protocol] = {
    "makris2020": Protocol(
        paper="makris2020", citation="Makris, Kontopoulos & Tserpes 2020 (medRxiv)",
        pool="makris-train", split="image-holdout", stratified=False, test_share=0.2, folds=0,
        classifier={**FROZEN, "backbone": "vgg16", "head": "dropout", "lr": 1e-3, "batch_size": 8, "epochs": 35,
                    "head_epochs": 35, "select": "last", "rotation": 30.0, "hflip": 0.5, "zoom": 0.2,
                    "width_shift": 0.1, "height_shift": 0.1},
        figures={"backbone": "VGG16", "accuracy": 0.9588, "test_images": 68,
                 "class_test_images": {"covid": 26, "normal": 20, "pneumonia": 22},
                 "precision": {"covid": 0.96, "normal": 0.95, "pneumonia": 0.95},
                 "recall": {"covid": 0.96, "normal": 1.00, "pneumonia": 0.91}},
        decided=("zoom ±20 % and shifts ±10 % stand for the paper's zoom and crop (magnitudes not given)",
                 "no validation split: the paper's validation curve was its test set, and the last epoch is kept, "
                 "so nothing here looks at the test set before testing"),
        deviations=("shear and random noise are not applied (no magnitude given; our augmentation has neither)",
                    "head: global average pooling of the last feature map, dropout, one linear layer; the paper puts "
                    "a new fully connected head on the backbone's final pooling layer",
                    "the test split has 67 images (20 % of 336), the paper's 68 (its Table 1's denominators)",
                    *LOADING),
        second_test="makris-test"),
    "zebin2020": Protocol(
        paper="zebin2020", citation="Zebin & Rezvy 2020 (Applied Intelligence)",
        pool="zebin", split="image-holdout", stratified=True, test_share=0.2, folds=5,
        classifier={**FROZEN, "backbone": "vgg16", "head": "mlp64", "lr": 1e-4, "batch_size": 8, "epochs": 50,
                    "head_epochs": 50, "select": "best-val", "rotation": 10.0, "width_shift": 0.1,
                    "height_shift": 0.1, "zoom": 0.0, "hflip": 0.5},
        figures={"backbone": "VGG16 v1 / v2; ResNet50; EfficientNetB0", "accuracy": 0.88, "accuracy_v2": 0.90,
                 "accuracy_resnet50": 0.943, "accuracy_efficientnetb0": 0.968, "test_images": 160,
                 "class_test_images": {"covid": 40, "normal": 60, "pneumonia": 60},
                 "precision": {"covid": 0.82, "normal": 0.84, "pneumonia": 0.98},
                 "precision_v2": {"covid": 0.93, "normal": 0.87, "pneumonia": 0.96},
                 "precision_efficientnetb0": {"covid": 1.0, "normal": 0.96, "pneumonia": 0.96}},
        decided=("5-fold CV of the training part: each fold's model is chosen on its held-out fold (the "
                 "checkpoint of their code) and tested on the one 20 % test set; the folds are the replicates",
                 "v2's GAN is trained on the 80 % training part only; a fold's v2 adds the synthetic images whose "
                 "parents are in that fold's training images (a synthetic image of a validation patient would "
                 "leak it), so fewer than 100 per fold"),
        deviations=("covid: the corpus's 176 ieee8023 PA images (the paper: 202); normal and pneumonia: the corpus's "
                    "142 paediatric images each (the paper: 300 each)",
                    "head: global average pooling of the last feature map; their code averages its top-left "
                    "4 × 4 window (AvgPool 4 × 4 on a 7 × 7 map)",
                    "the paper's vertical flip (text only) is not applied",
                    "v2's CycleGAN is this project's cpu profile (96 px, 800 iterations, resize-convolution "
                    "upsampling; `--gan-set` changes it) where the paper trained 5000 iterations with settings it "
                    "does not give; its images are upsampled to the classifier's size",
                    BACTERIAL, *LOADING),
        synthetic=100, replicates=3, progression_patient="ieee8023-173"),
    "luiz": Protocol(
        paper="luiz", citation="Luiz, Ragab, Karim & Batatia (Heriot-Watt)",
        pool="luiz", split="image-folds", stratified=True, test_share=0.0, folds=11,
        classifier={**FROZEN, "backbone": "densenet121", "head": "linear", "lr": 1e-3, "batch_size": 16,
                    "epochs": 30, "head_epochs": 30, "early_stopping": 5, "select": "best-val",
                    "rotation": 5.0, "zoom": 0.02, "width_shift": 0.0, "height_shift": 0.0, "hflip": 0.0},
        figures={"backbone": "DenseNet121", "accuracy": 0.946, "test_images": 52 * 3,
                 "class_test_images": {"covid": 52, "normal": 52, "pneumonia": 52},
                 "recall": {"covid": 0.977, "normal": 0.927, "pneumonia": 0.935}},
        decided=("learning rate 1e-3, batch 16, at most 30 epochs with early stopping after 5 (Adam is stated; "
                 "the rest is not)",
                 "fold k of the ten is the CV test fold; the eleventh (unseen) fold is every model's validation "
                 "split for early stopping and the best checkpoint"),
        deviations=("their Kaggle set (572 per class) is not in the corpus: covid are the corpus's ieee8023 and "
                    "figure1 PA images, normal and pneumonia its paediatric images, balanced to 142 per class",
                    "shear 2° is not applied (our augmentation has no shear)",
                    "the paper augments offline with fixed transforms (rotation 5°, zoom +2 %; 468 → 1,070 images "
                    "per class); here each epoch draws new random transforms of the same magnitudes",
                    "the learning rate is not reduced on plateau", BACTERIAL, *LOADING),
        replicates=3),
}

PROFILES: dict[str, dict] = {
    # 2 CPU cores: the real ImageNet CNN that installs offline, at 128 px (about 200 img/s head-only).
    "cpu": {"backbone": "efficientnet_lite0", "image_size": 128},
    # The papers' own backbones at 224 px: ImageNet weights download once (internet), for a GPU.
    "paper": {"image_size": 224},
}
