"""Metrics agree with scikit-learn; the Wilson interval matches a published value."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from classifier.evaluation.metrics import average_ranks, classification_metrics
from runkit.intervals import wilson_interval


def test_wilson_interval_known_values():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and high == pytest.approx(0.1611, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3, 80)
    probabilities = rng.dirichlet(np.ones(3), 80)
    probabilities[y_true == 1, 1] += 0.3  # some skill, so the numbers are not all near chance
    probabilities = np.round(probabilities / probabilities.sum(1, keepdims=True), 1)  # ties for the AUC
    ours = classification_metrics(y_true, probabilities)
    y_pred = probabilities.argmax(1)
    assert ours["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert ours["confusion_matrix"] == sk.confusion_matrix(y_true, y_pred, labels=[0, 1, 2]).tolist()
    precision, recall, f1, support = sk.precision_recall_fscore_support(y_true, y_pred, labels=[0, 1, 2],
                                                                         zero_division=0)
    for k, name in enumerate(("normal", "covid", "pneumonia")):
        scores = ours["per_class"][name]
        assert scores["precision"] == pytest.approx(precision[k])
        assert scores["recall"] == pytest.approx(recall[k])
        assert scores["f1"] == pytest.approx(f1[k])
        assert scores["support"] == support[k]
        assert scores["specificity"] == pytest.approx(sk.recall_score(y_true != k, y_pred != k))
        assert scores["roc_auc"] == pytest.approx(sk.roc_auc_score(y_true == k, probabilities[:, k]))
    assert ours["macro"]["f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro"))
    assert ours["macro"]["roc_auc"] == pytest.approx(
        np.mean([sk.roc_auc_score(y_true == k, probabilities[:, k]) for k in range(3)]))


def test_undefined_scores_are_none_not_zero():
    y_true = np.array([0, 0, 2, 2])
    probabilities = np.array([[0.9, 0.05, 0.05], [0.2, 0.1, 0.7], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2]])
    result = classification_metrics(y_true, probabilities)
    covid = result["per_class"]["covid"]
    assert covid["precision"] is None and covid["recall"] is None and covid["roc_auc"] is None
    # covid is absent from the labels: the macro mean is over the classes present, as sklearn's with labels=
    assert result["classes_present"] == ["normal", "pneumonia"]
    y_pred = probabilities.argmax(1)
    assert result["macro"]["precision"] == pytest.approx(
        sk.precision_score(y_true, y_pred, labels=[0, 2], average="macro"))
    assert result["accuracy"] == 0.5 and result["accuracy_ci95"][0] < 0.5 < result["accuracy_ci95"][1]
    # a class that is present but never predicted has no precision, and then neither has the macro mean
    never_covid = classification_metrics(np.array([0, 1, 2, 1]), probabilities)
    assert never_covid["per_class"]["covid"]["precision"] is None and never_covid["macro"]["precision"] is None


def test_average_ranks_share_ties():
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
