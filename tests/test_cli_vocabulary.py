"""One vocabulary across ``cxr``: an input run is --run, an output folder --out, lists are
comma-separated; the old spellings still work."""
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pipelines.cli import main as cxr
from runkit.options import comma_joined, input_run

OLD_OUTPUT_NAMES = {"--dest", "--out-dir", "--run-dir"}


def commands(group: click.Group, path=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_command_speaks_the_same_words():
    for path, command in commands(cxr):
        for param in command.params:
            where = f"cxr {' '.join(path)} {param.name}"
            if isinstance(param, click.Option):
                assert param.opts[0] not in OLD_OUTPUT_NAMES, f"{where}: an output folder is --out"
                assert "--manifest" not in param.opts or param.opts[0] == "--dataset", f"{where}: --dataset first"
            else:
                assert param.name != "run_dir", f"{where}: an input run is --run (the positional is the old form)"


RENAMED = [(["data", "fetch"], "--dest", "--out"), (["data", "import"], "--out-dir", "--out"),
           (["data", "verify"], "--manifest", "--dataset"), (["gan", "train"], "--run", "--out"),
           (["gan", "train"], "--size", "--image-size"), (["gan", "bench"], "--size", "--sizes"),
           (["classify", "train"], "--run-dir", "--out"),
           (["classify", "train"], "--counterfactual", "--counterfactual-set"),
           (["classify", "progression"], "--out", "--figure"),
           (["study", "gan-variants"], "--profile", "--gan-profile"),
           (["experiment", "compare"], "--no-lungs-hidden", "--no-lung-controls"),
           (["data", "bench"], "--size", "--image-size"), (["classify", "bench"], "--size", "--image-size")]


@pytest.mark.parametrize("command, old, new", RENAMED)
def test_an_old_name_is_hidden_from_help_and_still_works_with_one_line_naming_the_new(command, old, new):
    shown = CliRunner().invoke(cxr, [*command, "--help"]).output
    assert new in shown and f"{old} " not in shown.replace(f"{old}-", "") and f"{old}," not in shown
    option = next(p for path, c in commands(cxr) if list(path) == command for p in c.params if new in p.opts)
    assert old in option.old_names


def test_an_old_spelling_parses_and_says_the_new_one(tmp_path):
    result = CliRunner().invoke(cxr, ["data", "verify", "--manifest", str(tmp_path / "missing.csv")])
    assert "note: --manifest/-m is now --dataset (the old name works until" in result.output
    assert "missing.csv" in result.output  # parsed as the dataset: the error names the file


@click.command()
@input_run("the run", then="DATA")
def echo_run(run_dir: Path, data: Path):
    click.echo(f"{run_dir}|{data}")


@pytest.mark.parametrize("args, out", [(["--run", "r", "d"], "r|d"), (["r", "d"], "r|d"), (["d", "--run", "r"], "r|d")])
def test_input_run_as_option_or_as_the_old_positional(args, out):
    result = CliRunner().invoke(echo_run, args)
    assert result.exit_code == 0 and result.output.strip() == out


@pytest.mark.parametrize("args", [["r"], ["--run", "r"], ["--run", "r", "d", "e"], []])
def test_input_run_refuses_a_wrong_count_naming_the_form(args):
    result = CliRunner().invoke(echo_run, args)
    assert result.exit_code == 2 and "expected --run RUN DATA (or RUN DATA)" in result.output


def test_lists_join_repeats_and_commas():
    assert comma_joined(("64,96", " 128 ", "")) == ("64", "96", "128")


def test_the_experiment_folder_is_named_or_given(monkeypatch, tmp_path):
    from pipelines.experiment import cli as experiment

    chosen = []
    monkeypatch.setattr(experiment, "run_and_print", lambda config, out_dir, overwrite: chosen.append(out_dir))
    for args in ([], ["--name", "mine"], ["--out", str(tmp_path / "x")]):
        assert CliRunner().invoke(cxr, ["experiment", "demo", *args]).exit_code == 0
    assert chosen == [experiment.RUNS_ROOT / "demo", experiment.RUNS_ROOT / "mine", tmp_path / "x"]


def test_every_backbone_option_offers_the_registered_backbones_and_nothing_else():
    from classifier.model.registry import BACKBONES
    from pipelines.perf.bench import BACKBONES as BENCHED

    offered = {" ".join(path): param for path, command in commands(cxr) for param in command.params
               if param.name == "backbone"}
    assert {"classify train", "experiment compare"} <= set(offered)
    for where, param in offered.items():
        assert isinstance(param.type, click.Choice) and list(param.type.choices) == list(BACKBONES), where
        assert all(name in param.help for name in BACKBONES), where
    assert BENCHED == tuple(BACKBONES)  # cxr perf bench and cxr classify bench time the same ones


def test_device_and_overwrite_mean_the_same_in_every_command():
    seen = {"--device": 0, "--overwrite": 0}
    for path, command in commands(cxr):
        for param in command.params:
            if "--device" in param.opts:
                seen["--device"] += 1
                assert param.help.startswith("auto") and "cuda:N" in param.help, " ".join(path)
            if "--overwrite" in param.opts:
                seen["--overwrite"] += 1
                assert param.is_flag and param.help, " ".join(path)
    assert seen["--device"] >= 6 and seen["--overwrite"] >= 16
