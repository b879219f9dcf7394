"""Out-of-source measurement: does the model answer by disease or by image source?

A model trained where covid images come from other sources than normal and pneumonia ones can
learn the source. Two measurements expose it:

* the **cross-source block**: the predicted-class distribution on corpus images from sources
  that the training set lacks for some class (for cxr3: the Kaggle paediatric normal and
  pneumonia images, never trained on), summarised as the **out-of-source covid false-positive
  rate** — the share of non-covid images called covid;
* **per-source metrics** on the internal test split, with the accuracy within each source that
  holds two or more diseases (in cxr3 only ieee8023 covid vs ieee8023 pneumonia), where source
  cannot give the answer away.

Every function takes arrays of class names and sources, so run folders and experiment reports
compute the same numbers from their own files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cxrdata import CLASSES, CXRDataset, Manifest, data_root

from runkit.intervals import wilson_interval
from runkit.formatting import markdown_table, pct, rate_with_ci

COVID = "covid"
MIN_PER_CLASS = 5  # images per class a source needs in the test split for a within-source accuracy


def corpus_manifest(root: Path | None = None) -> Manifest | None:
    """Every image of the corpus (``metadata.csv`` under the data root), or None if absent."""
    path = Path(root or data_root()) / "metadata.csv"
    return Manifest.read(path, root=path.parent, default_split="test") if path.is_file() else None


def out_of_source(corpus: Manifest, dataset: Manifest, train: Manifest) -> Manifest:
    """Corpus images outside ``dataset`` (none of its splits, by checksum or file) whose source
    the training set ``train`` lacks for at least one class."""
    checksums = {r.sha256 for r in dataset if r.sha256}
    files = {r.file.resolve() for r in dataset}
    trained = {(r.source, r.label) for r in train}
    lacking = {r.source for r in corpus if any((r.source, c) not in trained for c in CLASSES)}
    kept = [r for r in corpus
            if r.source in lacking and r.sha256 not in checksums and r.file.resolve() not in files]
    return Manifest(kept, name="out-of-source")


def named(manifest: Manifest, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True classes, predicted classes (by highest probability) and sources of ``manifest``'s
    images, as arrays of names: what every function below takes."""
    return (np.array([r.label for r in manifest]), np.array(CLASSES)[np.asarray(probabilities).argmax(1)],
            np.array([r.source for r in manifest]))


def rate(hits: int, n: int) -> dict:
    """A proportion with its Wilson 95% interval (rate None when ``n`` is 0)."""
    low, high = wilson_interval(hits, n)
    return {"k": int(hits), "n": int(n), "rate": hits / n if n else None, "ci95": [low, high]}


def covid_false_positive(true: np.ndarray, predicted: np.ndarray) -> dict:
    """Share of non-covid images called covid."""
    negative = true != COVID
    return rate(int((predicted[negative] == COVID).sum()), int(negative.sum()))


def predicted_distribution(true: np.ndarray, predicted: np.ndarray, sources: np.ndarray) -> dict:
    """The cross-source block: per source and true class, how often each class was predicted,
    plus the pooled covid false-positive rate and accuracy (over all out-of-source images)."""
    true, predicted, sources = map(np.asarray, (true, predicted, sources))
    by_source = {}
    for source in sorted(set(sources.tolist())):
        here = sources == source
        by_source[source] = {
            label: {"n": int((here & (true == label)).sum()),
                    "predicted": {c: rate(int((here & (true == label) & (predicted == c)).sum()),
                                          int((here & (true == label)).sum())) for c in CLASSES}}
            for label in CLASSES if (here & (true == label)).any()}
    return {"n": int(len(true)), "sources": by_source,
            "covid_false_positive": covid_false_positive(true, predicted),
            "accuracy": rate(int((true == predicted).sum()), len(true))}


def per_source(true: np.ndarray, predicted: np.ndarray, sources: np.ndarray,
               min_per_class: int = MIN_PER_CLASS) -> dict:
    """Accuracy and per-class recall per source on one test split, and the accuracy within each
    source that holds at least two classes of ``min_per_class`` images or more."""
    true, predicted, sources = map(np.asarray, (true, predicted, sources))
    out = {}
    for source in sorted(set(sources.tolist())):
        here = sources == source
        right = here & (true == predicted)
        present = [c for c in CLASSES if (here & (true == c)).any()]
        entry = {"accuracy": rate(int(right.sum()), int(here.sum())),
                 "recall": {c: rate(int((right & (true == c)).sum()), int((here & (true == c)).sum()))
                            for c in present}}
        several = [c for c in present if (here & (true == c)).sum() >= min_per_class]
        if len(several) >= 2:
            chosen = here & np.isin(true, several)
            entry["within_source"] = {"classes": several,
                                      "accuracy": rate(int((chosen & (true == predicted)).sum()), int(chosen.sum()))}
        out[source] = entry
    return out


def evaluate_out_of_source(predict, dataset: Manifest, train: Manifest, size: int,
                           progress: bool = True, region: str = "full") -> tuple[Manifest, np.ndarray] | str:
    """Predict the out-of-source images of ``dataset``: ``(manifest, probabilities)``, or the
    reason there are none. ``predict`` maps a :class:`CXRDataset` to probabilities."""
    corpus = corpus_manifest()
    if corpus is None:
        return f"no corpus metadata.csv under {data_root()}"
    images = out_of_source(corpus, dataset, train)
    if not len(images):
        return "every corpus source is in the training set for every class"
    return images, predict(CXRDataset(images, size, progress=progress, region=region))


def cross_source_markdown(block: dict | str) -> list[str]:
    """The report section of a cross-source block (or the reason it is missing)."""
    out = ["## Out-of-source check", ""]
    if isinstance(block, str):
        return out + [f"Not measured: {block}.", ""]
    out += [f"Corpus images from sources the training set lacks for some class, never trained on "
            f"({block['n']} images). A model that learned the disease answers them like any other image; "
            "one that learned the source calls them by their source.", "",
            f"**Out-of-source covid false-positive rate: {rate_with_ci(block['covid_false_positive'])}** of the "
            "non-covid images there called covid (Wilson 95% interval).", ""]
    out += markdown_table(["source", "true class", "n", *(f"called {c} %" for c in CLASSES)],
                          [[source, label, entry["n"], *(f"{pct(entry['predicted'][c]['rate'])} "
                                                         f"[{pct(entry['predicted'][c]['ci95'][0])}, "
                                                         f"{pct(entry['predicted'][c]['ci95'][1])}]" for c in CLASSES)]
                           for source, classes in block["sources"].items() for label, entry in classes.items()])
    return out + ["", "Per-image predictions: `cross_source.csv`. Paediatric images differ from adult ones, "
                  "so 'normal' or 'pneumonia' answers there are debatable; 'covid' is wrong for every one.", ""]


def per_source_markdown(block: dict) -> list[str]:
    out = ["## Per source (test split)", ""] + markdown_table(
        ["source", "n", "accuracy % [95% CI]", "recall per class %"],
        [[source, entry["accuracy"]["n"], rate_with_ci(entry["accuracy"]),
          ", ".join(f"{c} {pct(r['rate'])} ({r['k']}/{r['n']})" for c, r in entry["recall"].items())]
         for source, entry in block.items()])
    within = {s: e["within_source"] for s, e in block.items() if "within_source" in e}
    if within:
        out += ["", "**Within one source** (the source cannot give these answers away):"]
        out += [f"- {s}, {' vs '.join(w['classes'])}: accuracy {rate_with_ci(w['accuracy'])}"
                for s, w in within.items()]
    return out + [""]


def source_mix(manifest: Manifest, leave_out: str) -> dict[str, dict[str, int]]:
    """Images per source within each class, ``leave_out`` (the synthetic images' source) left out."""
    mix: dict[str, dict[str, int]] = {}
    for record in manifest:
        if record.source != leave_out:
            by_source = mix.setdefault(record.label, {})
            by_source[record.source] = by_source.get(record.source, 0) + 1
    return mix


def source_caveat(mix: dict[str, dict[str, int]]) -> str:
    """A report's caveat, from the training split's own sources (``source_mix``), not a corpus's."""
    main = {label: max(by, key=by.get) for label, by in mix.items()}
    shares = "; ".join(f"{label} {by[main[label]] / sum(by.values()):.0%} {main[label]}"
                       for label, by in mix.items())
    if len(set(main.values())) > 1:
        verdict = ("the classes come mostly from different sources, so source can stand in for disease. "
                   "Read the per-source results, the shortcut indicator and the lung controls before "
                   "the accuracy.")
    else:
        verdict = (f"every class comes mostly from {next(iter(main.values()))}, so this data cannot show whether "
                   "source stands in for disease; before trusting the accuracy elsewhere, check where each "
                   "class's images come from.")
    return f"Training images by main source per class: {shares}: {verdict}"
