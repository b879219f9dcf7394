"""The CPU demo's settings: every step of the experiment, small enough for 2 cores."""

DEMO = {
    "seeds": (0, 1, 2),
    "classifier": {"epochs": 8, "image_size": 96},
    "gan": {},  # the cpu profile as measured by `make gan-variants` (800 iterations, resize upsampling)
}
