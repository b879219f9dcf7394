"""The 3-class chest X-ray classifier (normal / covid / pneumonia) by transfer learning.

Entry points: :func:`classifier.config.make_config` (profiles ``cpu`` and ``paper``),
:func:`classifier.training.train.train_classifier` (one run: fit, select on val, test, report, Grad-CAM),
:func:`classifier.inference.predict.predict_files` and the ``cxr classify`` command (:mod:`classifier.cli`).
"""
