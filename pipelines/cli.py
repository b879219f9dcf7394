"""The ``cxr`` command: one entry point with a subcommand group per job."""
from __future__ import annotations

import click

from classifier.cli import classify_cli
from cxrdata.cli import data_cli
from cxrdata.lungs.cli import lungs_cli
from cyclegan.cli import gan_cli
from runkit.errors import DEBUG_ENV, OneLineErrors

from pipelines.experiment.cli import experiment_cli
from pipelines.perf.cli import perf_cli
from pipelines.studies.cli import study_cli


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--debug", is_flag=True, help=f"Show the traceback of an error (same as {DEBUG_ENV}=1).")
def main(debug: bool):
    """GAN-augmented chest X-ray classification: data, CycleGAN, classifier, the experiment, the
    studies that chose its defaults, and speed checks.

    Bad input is reported in one line naming the file or option, with exit status 1 (2 for a
    misused option); Ctrl-C stops a long command with one line and exit status 130."""


@click.group("pipeline", cls=OneLineErrors, hidden=True)
def pipeline_cli():
    """The old names: `cxr pipeline X` runs `cxr experiment X`, `cxr study X`, `cxr perf X` or
    `cxr classify progression`."""


for group in (data_cli, lungs_cli, gan_cli, classify_cli, experiment_cli, study_cli, perf_cli):
    main.add_command(group)
OLD_PIPELINE_NAMES = {  # the names `cxr pipeline` had; commands added since have none there
    experiment_cli: ("compare", "demo", "counterfactual"),
    study_cli: ("mitigations", "choose-v3", "gan-variants", "precision", "choose-backbone", "reproduce"),
    perf_cli: ("bench", "gpu-check", "gpu-check-data")}
for group, names in OLD_PIPELINE_NAMES.items():
    for name in names:
        pipeline_cli.add_command(group.commands[name], name)
pipeline_cli.add_command(classify_cli.commands["progression"], "progression")
main.add_command(pipeline_cli)

if __name__ == "__main__":
    main()
