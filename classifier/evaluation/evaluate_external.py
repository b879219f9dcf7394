"""``cxr classify evaluate``: a finished run's best model on any labelled data.

The images go through exactly the training preprocessing (the same decoding, square crop and
resize, and the model's own input path), so evaluating a run on its own test split reproduces
its ``predictions.csv``. Results go to ``runs/evaluate/<name>/``, never into the model's run:
``config.json``, ``predictions.csv`` (with each image's Grad-CAM border share),
``metrics.json``, ``report.md``, ``confusion.png`` and ``gradcam/`` (a grid per class with an overlay per
grid per class).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from cxrdata import CLASSES, CXRDataset, Manifest, read_grayscale
from cxrdata.cache import decode_readable
from cxrdata.lungs import default_segmenter, lung_masks
from runkit import device as devices, rundir
from runkit.resources import memory_guard
from runkit.rundir import RunExistsError, runs_root
from runkit.formatting import decimal, markdown_table, pct

import classifier.evaluation.crosssource as crosssource

import classifier.evaluation.run_files as report
from classifier.evaluation.held_out import dataset_cams, write_cams
from classifier.evaluation.labelled import LabelledDataError, read_labelled
from classifier.evaluation.metrics import classification_metrics
from classifier.inference.runs import load_run_model, model_summary, run_config
from classifier.inference.input_gate import checker_for_run
from classifier.inference.probabilities import ProbabilityEngine, check_engine

RUNS_ROOT = runs_root("evaluate")
SHOWN = 10  # file names listed in the report and warnings before "and N more"


@dataclass
class Evaluation:
    out_dir: Path
    metrics: dict  # what metrics.json holds

    @property
    def unreadable(self) -> list[dict]:
        """``{"file", "reason"}`` of every file skipped as unreadable."""
        return self.metrics["unreadable"]

    @property
    def in_training(self) -> list[str]:
        """Files whose bytes the model trained on."""
        return self.metrics["in_training"]

    @property
    def ignored_folders(self) -> list[str]:
        return self.metrics["ignored_folders"]


def default_name(run_dir: Path, data: Manifest) -> str:
    return f"{Path(run_dir).resolve().name}-on-{data.name}"


def evaluate_run(run_dir: Path | str, data: Path | str, out_dir: Path | str | None = None, *,
                 split: str | None = None, root: Path | str | None = None, ignore_unknown: bool = False,
                 allow_unfinished: bool = False, overwrite: bool = False, cam_class: str = "predicted",
                 every_overlay: bool = False, engine: str = "auto", device: str = "auto",
                 progress: bool = True) -> Evaluation:
    """Evaluate the best model of ``run_dir`` on ``data`` (class folders or a manifest CSV); Grad-CAM
    overlays for the grids' images, or for every image with ``every_overlay``."""
    run_dir = Path(run_dir)
    torch_device = devices.pick_device(device)
    check_engine(engine)
    config = run_config(run_dir, allow_unfinished)
    manifest, ignored = read_labelled(data, split=split, ignore_unknown=ignore_unknown, root=root)
    out_dir = Path(out_dir) if out_dir is not None else RUNS_ROOT / default_name(run_dir, manifest)
    if out_dir.resolve().is_relative_to(run_dir.resolve()):
        raise LabelledDataError(f"--out {out_dir}: inside the model's run folder; evaluations live "
                                "beside runs, never in them (default runs/evaluate/<name>)")
    if rundir.is_finished(out_dir) and not overwrite:
        raise RunExistsError(f"{out_dir} holds a finished evaluation; pass --overwrite to replace it, or "
                             "--name for another")
    model, size = load_run_model(run_dir, torch_device)
    check = checker_for_run(config)
    readable, images, failed = decode_readable(manifest, size, progress=progress)
    if not len(readable):
        raise LabelledDataError(f"{data}: none of the {len(manifest)} images could be read (first: "
                                f"{failed[0][1]}); check the paths (manifests resolve against --root, "
                                "default the data root)")
    settings = {"run": str(run_dir.resolve()), "data": str(Path(data).resolve()), "split": split,
                "root": str(root) if root else None, "ignore_unknown": ignore_unknown, "cam_class": cam_class,
                "every_overlay": every_overlay, "engine": engine, "device": device, "image_size": size}
    with rundir.RunLock(out_dir), memory_guard(f"evaluating {run_dir}", config["batch_size"], size, torch_device,
                                               "evaluate on a machine with more memory, or with --device cpu"):
        rundir.open_run(out_dir, settings, overwrite=(out_dir / rundir.CONFIG).is_file())  # unfinished or asked

        dataset = CXRDataset(readable, size, images=images, region=config.get("region", "full"))
        scorer = ProbabilityEngine(model, size, torch_device, engine)
        probabilities = scorer.dataset(dataset, config["batch_size"], progress, f"scoring ({scorer.backend})")
        maps, targets = dataset_cams(model, dataset, cam_class, config["batch_size"], torch_device, progress)
        cams = write_cams(out_dir / "gradcam", dataset, maps, targets, probabilities, cam_class, every_overlay)
        masks = lung_masks(readable, default_segmenter(), progress)  # the dataset's own, from the cache
        verdicts = [check(read_grayscale(r.file), lungs) for r, lungs in
                    tqdm(zip(readable, masks), total=len(readable), desc="quality gate", unit="image", leave=False,
                         disable=not progress)]
        flagged = [{"file": r.path, "reason": v.sentence()} for r, v in zip(readable, verdicts) if not v.ok]
        shares = [image["border_share"] for image in cams["images"]]
        report.write_predictions(out_dir / "predictions.csv", readable, probabilities, {
            "border_share": ["" if share is None else f"{share:.4f}" for share in shares],
            "quality_ok": [str(int(v.ok)) for v in verdicts], "quality": [v.sentence() for v in verdicts]})
        true, predicted, sources = crosssource.named(readable, probabilities)
        metrics = {"model": model_summary(run_dir, config), "data": settings["data"], "split": split,
                   "images": len(manifest), "evaluated": len(readable), "engine": scorer.backend,
                   "test": classification_metrics(dataset.labels.numpy(), probabilities),
                   "covid_false_positive": crosssource.covid_false_positive(true, predicted),
                   "per_source": crosssource.per_source(true, predicted, sources),
                   "gradcam": {k: v for k, v in cams.items() if k != "images"},
                   "unreadable": [{"file": str(r.file), "reason": reason} for r, reason in failed],
                   "quality_flagged": flagged,
                   "in_training": _in_training(run_dir, readable), "ignored_folders": ignored}
        rundir.write_json(out_dir / "metrics.json", metrics)
        low, high = metrics["test"]["accuracy_ci95"]
        report.save_confusion(out_dir / "confusion.png", metrics["test"]["confusion_matrix"],
                              f"{out_dir.name}: accuracy {metrics['test']['accuracy']:.3f} ({low:.3f}–{high:.3f})")
        (out_dir / "report.md").write_text(markdown(out_dir, metrics), encoding="utf-8")
        rundir.mark_finished(out_dir, {"accuracy": metrics["test"]["accuracy"], "evaluated": len(readable)})
    return Evaluation(out_dir, metrics)


def _in_training(run_dir: Path, data: Manifest) -> list[str]:
    """Files of ``data`` whose bytes are among the run's training images (train_images.csv)."""
    path = run_dir / "train_images.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        trained = {row["sha256"] for row in csv.DictReader(fh) if row.get("sha256")}
    return [r.path for r in data if r.sha256 and r.sha256 in trained]


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(f"`{n}`" for n in names[:SHOWN]) + more


def markdown(out_dir: Path, m: dict) -> str:
    test, model = m["test"], m["model"]
    low, high = test["accuracy_ci95"]
    absent = [c for c in CLASSES if c not in test["classes_present"]]
    own = model["own_test_accuracy"]
    out = [f"# Evaluation `{out_dir.name}`", "",
           f"Model: run `{model['run']}` ({model['backbone']}, {model['aug']}, {model['image_size']} px, trained on "
           f"`{model['dataset']}`" + (f"; its own test accuracy {100 * own:.1f} %" if own is not None else "") + ").",
           f"Data: `{m['data']}`" + (f", split {m['split']}" if m["split"] else "") +
           f"; {m['evaluated']} of {m['images']} images evaluated.", ""]
    if m["in_training"]:
        out += [f"**Warning: {len(m['in_training'])} image(s) are in the model's training set** (same file bytes), "
                f"so this is not a fair test of them: {_listed(m['in_training'])}.", ""]
    if m["unreadable"]:
        out += [f"**{len(m['unreadable'])} file(s) could not be read** and were skipped:", ""]
        out += [f"- {u['reason']}" for u in m["unreadable"][:SHOWN]]
        out += ([f"- … and {len(m['unreadable']) - SHOWN} more (all in metrics.json)"]
                if len(m["unreadable"]) > SHOWN else []) + [""]
    if m["quality_flagged"]:
        out += [f"**{len(m['quality_flagged'])} image(s) flagged by the input quality gate** (evaluated and "
                "counted, but the model's answer on them is unreliable; per image: `predictions.csv`):", ""]
        out += [f"- `{q['file']}`: {q['reason']}" for q in m["quality_flagged"][:SHOWN]]
        out += ([f"- … and {len(m['quality_flagged']) - SHOWN} more (all in metrics.json)"]
                if len(m["quality_flagged"]) > SHOWN else []) + [""]
    if m["ignored_folders"]:
        out += [f"Folders ignored (not a class name): {_listed(m['ignored_folders'])}.", ""]
    out += [f"**Accuracy {100 * test['accuracy']:.1f} %** ({test['correct']}/{test['n']}; Wilson 95% interval "
            f"{100 * low:.1f}–{100 * high:.1f}).", "",
            f"Non-covid images called covid: {pct(m['covid_false_positive']['rate'])} % "
            f"({m['covid_false_positive']['k']}/{m['covid_false_positive']['n']}).", ""]
    if absent:
        out += [f"Absent from these data (no images; recall and ROC AUC undefined): {', '.join(absent)}.", ""]
    out += markdown_table(
        ["class", "n", "recall % [95% CI]", "precision %", "specificity %", "ROC AUC"],
        [[name, 0, "absent", pct(s["precision"]), pct(s["specificity"]), "absent"] if name in absent else
         [name, s["support"], f"{pct(s['recall'])} [{pct(s['recall_ci95'][0])}, {pct(s['recall_ci95'][1])}]",
          pct(s["precision"]), pct(s["specificity"]), decimal(s["roc_auc"])] for name, s in test["per_class"].items()])
    out += [""] + report.confusion_markdown(test["confusion_matrix"]) + [""]
    if len(m["per_source"]) > 1:
        out += crosssource.per_source_markdown(m["per_source"])
    cam = m["gradcam"]
    out += ["## Grad-CAM", "", f"Mean border share {decimal(cam['mean_border_share'])} (an even map gives "
            f"{cam['border_area']:.2f}; well above it, the model looks at edges, markers and text). Per image: "
            f"`predictions.csv`; overlays for {cam.get('overlays', 'every image')}: `gradcam/overlays/`.", ""]
    out += [f"- {c}: ![{c}](gradcam/grid_{c}.png)" for c in test["classes_present"]]
    return "\n".join(out) + "\n"
