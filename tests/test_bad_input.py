"""Hostile and awkward inputs: every file kind × every entry point (read, verify, predict,
training data load) gives the right image or a one-line error naming the file, and the other
files of the batch are still processed; every command × bad value gives a one-line message."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cxrdata import CXRDataset, ImageReadError, Manifest, UnreadableImagesError, read_grayscale
from cxrdata.cache import decode_readable
from conftest import png_header_only
from cxrdata.manifest import sha256_of
from pipelines.cli import main

OK = None  # the expected outcome of a file that reads correctly


def make_files(folder: Path, real: Path) -> dict[str, str | None]:
    """Every file kind the tests cover, made from one real CXR: ``{name: expected error or OK}``."""
    folder.mkdir(parents=True, exist_ok=True)
    gray = np.asarray(Image.open(real).convert("L"))
    picture = Image.fromarray(gray)
    png_header_only(folder / "bomb.png", 100_000, 100_000)
    (folder / "truncated.png").write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("this is not an image\n" * 20)
    (folder / "page.jpg").write_text("<!doctype html><html><body>404 Not Found</body></html>")
    Image.fromarray(gray.astype(np.float32) * 3.5).save(folder / "float.tiff")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    picture.save(folder / "exif-rotated.jpg", exif=exif)
    picture.convert("1").save(folder / "one-bit.png")
    picture.convert("P").save(folder / "palette.png")
    picture.convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / "sixteen-bit.png")
    picture.resize((4, 4)).save(folder / "tiny.png")
    picture.resize((4000, 20)).save(folder / "very-wide.png")
    picture.save(folder / "ünïcödé ✓ name.png")
    return {"bomb.png": "refused: .*100000", "truncated.png": "corrupt or truncated", "empty.png": "file is empty",
            "text.png": "not a readable image", "page.jpg": "not a readable image", "float.tiff": OK,
            "exif-rotated.jpg": OK, "one-bit.png": OK, "palette.png": OK, "cmyk.jpg": OK,
            "sixteen-bit.png": OK, "tiny.png": OK, "very-wide.png": OK, "ünïcödé ✓ name.png": OK}


@pytest.fixture(scope="module")
def files(cxr3, tmp_path_factory) -> tuple[Path, dict[str, str | None], Path]:
    folder = tmp_path_factory.mktemp("hostile") / "files"
    real = cxr3.select(label="normal")[0].file
    return folder, make_files(folder, real), real


def bad(expected: dict) -> list[str]:
    return [name for name, outcome in expected.items() if outcome is not OK]


def as_manifest(folder: Path, expected: dict) -> Path:
    """A manifest of every file (train split, normal), with each file's true sha256."""
    csv = folder.parent / "hostile.csv"
    rows = [f"files/{name},normal,train,p{i},test,{sha256_of(folder / name)}" for i, name in enumerate(expected)]
    csv.write_text("path,label,split,patient_id,source,sha256\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return csv


def test_read(files):
    folder, expected, real = files
    for name, outcome in expected.items():
        if outcome is OK:
            image = read_grayscale(folder / name)
            assert image.ndim == 2 and image.dtype == np.uint8 and image.max() > image.min(), name
        else:
            with pytest.raises(ImageReadError, match=outcome) as info:
                read_grayscale(folder / name)
            assert str(folder / name) in str(info.value) and "\n" not in str(info.value)
    upright = read_grayscale(folder / "exif-rotated.jpg")
    assert upright.shape == read_grayscale(real).shape[::-1]
    np.testing.assert_array_equal(read_grayscale(folder / "ünïcödé ✓ name.png"), read_grayscale(real))


def test_verify(files, monkeypatch):
    folder, expected, _ = files
    monkeypatch.setenv("CXR_DATA", str(folder.parent))
    (folder.parent / "metadata.csv").touch()  # marks the folder as a corpus
    result = CliRunner().invoke(main, ["data", "verify", "--dataset", str(as_manifest(folder, expected))])
    assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("  ")]
    for name in expected:
        named = [line for line in errors if f"/{name}:" in line]
        assert len(named) == (0 if expected[name] is OK else 1), (name, named)
    assert f"Error: {len(bad(expected))} file(s) missing, mismatched or unreadable" in result.output


def test_training_data_load(files):
    folder, expected, _ = files
    manifest = Manifest.read(as_manifest(folder, expected), root=folder.parent)
    with pytest.raises(UnreadableImagesError) as info:
        CXRDataset(manifest, 16, progress=False)
    assert str(info.value).startswith(f"{len(bad(expected))} of {len(expected)} image(s)")
    assert all(name in str(info.value) for name in bad(expected))
    kept, images, failed = decode_readable(manifest, 16, progress=False)
    assert [r.file.name for r in kept] == [n for n in expected if expected[n] is OK]
    assert images.shape == (len(kept), 16, 16) and len(failed) == len(bad(expected))


@pytest.mark.integration
def test_predict(files, tiny_run, tmp_path):
    folder, expected, _ = files
    run, _ = tiny_run
    table = tmp_path / "predictions.csv"
    result = CliRunner().invoke(main, ["classify", "predict", *(str(folder / n) for n in expected),
                                       "--run", str(run), "--out", str(tmp_path / "overlays"), "--csv", str(table)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    for name, outcome in expected.items():
        if outcome is OK:
            assert f"{folder / name}: " in result.output and f"skipped {folder / name}" not in result.output, name
        else:
            assert f"skipped {folder / name}" in result.output, name
    assert len(table.read_text(encoding="utf-8").splitlines()) == 1 + len(expected) - len(bad(expected))
    assert f"{len(bad(expected))} of {len(expected)} file(s) could not be read" in result.output


# ---- every command × a bad value: one line, exit status 1 or 2, no traceback --------------------

@pytest.fixture
def broken_run(tiny_run, tmp_path) -> Path:
    """A copy of the tiny run whose best.pt and last.pt are cut in half."""
    run = shutil.copytree(tiny_run[0], tmp_path / "broken")
    for name in ("best.pt", "last.pt"):
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) // 2])
    return run


BAD_VALUES = [
    (["data", "verify", "--dataset", "cxr9"], "cxr9.csv: manifest not found"),
    (["data", "verify", "--dataset", "{tmp}/escape.csv"], "leads outside the data root"),
    (["gan", "train", "--device", "banana"], "--device banana: not a device name"),
    (["gan", "train", "--lr", "-1", "--out", "{tmp}/gan"], "lr"),
    (["gan", "bench", "--device", "banana"], "--device banana"),
    (["gan", "synth", "--run", "{tmp}/nowhere"], "nowhere"),
    (["classify", "train", "--device", "banana"], "--device banana"),
    (["classify", "train", "--backbone", "resnet9000"], "resnet9000"),
    (["classify", "train", "--dataset", "{tmp}/escape.csv"], "leads outside the data root"),
    (["classify", "bench", "--backbones", "resnet18", "--device", "banana"], "--device banana"),
    (["classify", "predict", "x.png", "--run", "{tmp}/nowhere"], "nowhere"),
    (["classify", "predict", "x.png", "--run", "{tmp}/nowhere", "--device", "cuda:7"], "--device cuda:7"),
    (["classify", "predict", "{image}", "--run", "{broken}"], "best.pt: not a readable checkpoint"),
    (["classify", "train", "--dataset", "{dataset}", "--image-size", "32", "--batch-size", "4", "--seed", "3",
      "--epochs", "2", "--out", "{broken}", "--resume"], "last.pt: not a readable checkpoint"),
    (["classify", "evaluate", "{tmp}/nowhere", "cxr3"], "nowhere"),
    (["classify", "evaluate", "nowhere", "data", "--device", "banana"], "--device banana"),
    (["experiment", "compare", "--backbone", "resnet9000"], "resnet9000"),
    (["experiment", "compare", "--set", "nosuchkey=3"], "nosuchkey"),
    (["experiment", "compare", "--gan-set", "nosuchkey=3"], "nosuchkey"),
    (["experiment", "compare", "--set", "device=banana"], "--device banana"),
    (["study", "mitigations", "--variants", "magic"], "magic"),
]


@pytest.mark.integration
@pytest.mark.parametrize("command, message", BAD_VALUES, ids=[" ".join(c[:3]) for c, _ in BAD_VALUES])
def test_every_command_reports_a_bad_value_in_one_line(command, message, tmp_path, monkeypatch, request, cxr3):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "escape.csv").write_text("path,label,split,patient_id,source,sha256\n"
                                         "../../../../etc/hostname,normal,train,p,x,\n")
    values = {"tmp": str(tmp_path), "image": str(cxr3[0].file)}
    if any("{broken}" in part for part in command):
        values["broken"] = str(request.getfixturevalue("broken_run"))
        values["dataset"] = str(request.getfixturevalue("tiny_run")[0].parent / "tiny.csv")
    args = [part.format(**values) for part in command]
    result = CliRunner().invoke(main, args)
    assert result.exit_code in (1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    error = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error) == 1 and message in error[0], result.output


@pytest.mark.parametrize("switch", [["--debug"], []])
def test_debug_shows_the_traceback(switch, monkeypatch):
    from cxrdata import ManifestError

    monkeypatch.delenv("CXR_DEBUG", raising=False)
    if not switch:
        monkeypatch.setenv("CXR_DEBUG", "1")
    result = CliRunner().invoke(main, switch + ["data", "verify", "--dataset", "cxr9"])
    assert isinstance(result.exception, ManifestError)


@pytest.mark.parametrize("args, patch", [
    (["classify", "train", "--epochs", "1"], "classifier.training.train.train_classifier"),
    (["gan", "train", "--iterations", "1"], "cyclegan.cli.train"),
    (["experiment", "demo"], "pipelines.experiment.cli.run_and_print"),
    (["pipeline", "demo"], "pipelines.experiment.cli.run_and_print"),  # the old name
])
def test_ctrl_c_is_one_line_and_exit_status_130_for_every_long_command(args, patch, monkeypatch):
    def stopped(*_, **__):
        raise KeyboardInterrupt("interrupted at epoch 2; continue with --resume")

    monkeypatch.setattr(patch, stopped)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 130, result.output
    assert result.output.strip() == "interrupted at epoch 2; continue with --resume"


def test_every_old_pipeline_command_name_still_runs_its_new_command():
    from pipelines.cli import pipeline_cli

    old = {"compare": "experiment", "demo": "experiment", "counterfactual": "experiment", "precision": "study",
           "mitigations": "study", "choose-v3": "study", "gan-variants": "study", "reproduce": "study",
           "choose-backbone": "study", "bench": "perf", "gpu-check": "perf", "gpu-check-data": "perf",
           "progression": "classify"}
    assert set(pipeline_cli.commands) == set(old) and pipeline_cli.hidden
    for name, group in old.items():
        assert pipeline_cli.commands[name] is main.commands[group].commands[name], name
        assert CliRunner().invoke(main, ["pipeline", name, "--help"]).exit_code == 0, name
    shown = CliRunner().invoke(main, ["--help"]).output
    assert all(f"  {group} " in shown for group in ("experiment", "study", "perf")) and "  pipeline " not in shown
