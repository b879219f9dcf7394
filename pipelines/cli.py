"""The ``cxr`` command: one entry point with a subcommand group per package."""
from __future__ import annotations

import click

from classifier.cli import classify_cli
from cxrdata.cli import data_cli
from cyclegan.cli import gan_cli
from runkit.cli import DEBUG_ENV, OneLineErrors

from pipelines.pipeline_cli import pipeline_cli


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--debug", is_flag=True, help=f"Show the traceback of an error (same as {DEBUG_ENV}=1).")
def main(debug: bool):
    """GAN-augmented chest X-ray classification: data, CycleGAN, classifier, experiments.

    Bad input is reported in one line naming the file or option, with exit status 1 (2 for a
    misused option)."""


main.add_command(data_cli)
main.add_command(gan_cli)
main.add_command(classify_cli)
main.add_command(pipeline_cli)

if __name__ == "__main__":
    main()
