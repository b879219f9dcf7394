"""What a classifier checkpoint holds and how a model is rebuilt from one, refusing a checkpoint made
for another backbone or input setting."""
from __future__ import annotations

from pathlib import Path

from classifier.model.backbones import CXRClassifier, build_model
from classifier.model.registry import BACKBONES

# what a checkpoint made before a setting existed had
IDENTITY_DEFAULTS = {"equalize": False, "head": "linear", "region": "full"}


class CheckpointMismatchError(ValueError):
    """A checkpoint was made for another backbone or input setting."""


def checkpoint_payload(model: CXRClassifier, **extra) -> dict:
    """What best.pt holds: the model's identity, the weights it started from, its weights, plus ``extra``."""
    return {**model.identity(), "initial_weights": model.initial_weights, "model": model.state_dict(), **extra}


def load_weights(model: CXRClassifier, checkpoint: dict, source: Path | str) -> None:
    """Load ``checkpoint``'s weights, refusing one made for another backbone or input setting."""
    for key, want in model.identity().items():
        have = checkpoint.get(key, IDENTITY_DEFAULTS.get(key))
        if have != want:
            raise CheckpointMismatchError(f"{source}: checkpoint has {key}={have!r} but this model has "
                                          f"{key}={want!r}; use the run's own settings or another run")
    model.load_state_dict(checkpoint["model"])


def model_from_checkpoint(checkpoint: dict, source: Path | str) -> CXRClassifier:
    """Rebuild the classifier a checkpoint describes (no pretrained download needed)."""
    if checkpoint.get("backbone") not in BACKBONES:
        raise CheckpointMismatchError(f"{source}: not a classifier checkpoint (backbone "
                                      f"{checkpoint.get('backbone')!r})")
    model = build_model(checkpoint["backbone"], "none", bool(checkpoint.get("hide_lungs")),
                        bool(checkpoint.get("equalize")), checkpoint.get("head", IDENTITY_DEFAULTS["head"]),
                        checkpoint.get("region", IDENTITY_DEFAULTS["region"]))
    load_weights(model, checkpoint, source)
    model.initial_weights = checkpoint.get("initial_weights", {"weights": "not recorded"})
    return model
