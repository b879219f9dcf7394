"""The 3-class chest X-ray classifier (normal / covid / pneumonia) by transfer learning.

Entry points: :func:`make_config` (profiles ``cpu`` and ``paper``), :func:`build_model`,
:func:`train_classifier` (one run: fit, select on val, test, report, Grad-CAM), :func:`evaluate_run`,
:func:`predict_files`, :func:`export_run`, :func:`create_app` (the web page); or ``cxr classify``.
"""
from runkit.entry_points import lazy_exports

ENTRY_POINTS = {"ClassifierConfig": "classifier.config", "make_config": "classifier.config",
                "build_model": "classifier.model.backbones", "train_classifier": "classifier.training.train",
                "evaluate_run": "classifier.evaluation.evaluate_external",
                "predict_files": "classifier.inference.predict", "Predictor": "classifier.inference.predict",
                "export_run": "classifier.inference.export", "create_app": "classifier.inference.serve"}
__all__ = list(ENTRY_POINTS)
__getattr__ = lazy_exports(__name__, ENTRY_POINTS)
