"""The ``cxr`` command: one entry point with a subcommand group per package."""
from __future__ import annotations

import click

from classifier.cli import classify_cli
from cxrdata.cli import data_cli
from cyclegan.cli import gan_cli

from .pipeline_cli import pipeline_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
def main():
    """GAN-augmented chest X-ray classification: data, CycleGAN, classifier, experiments."""


main.add_command(data_cli)
main.add_command(gan_cli)
main.add_command(classify_cli)
main.add_command(pipeline_cli)

if __name__ == "__main__":
    main()
