"""The option vocabulary every ``cxr`` command shares.

- An input run is ``--run RUN`` (:func:`input_run`); an output folder is ``--out``.
- A list of numbers or names is comma-separated (``--seeds 0,1,2``); where an option may also be
  repeated, repeats add to the list. Values that may hold commas themselves (``--set KEY=VALUE``,
  URLs, patterns) are given by repeating the option.
"""
from __future__ import annotations

import functools
from pathlib import Path

import click


def int_list(text: str | None, option: str) -> tuple[int, ...]:
    """``"0,1,2"`` → ``(0, 1, 2)``; a bad value names ``option``."""
    if not text:
        return ()
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v != "")
    except ValueError:
        raise click.BadParameter(f"expected comma-separated whole numbers, got {text!r}",
                                 param_hint=option) from None


def comma_joined(values) -> tuple[str, ...]:
    """Repeated and comma-separated values as one tuple: ``("64,96", "128")`` → ``("64", "96", "128")``."""
    return tuple(v.strip() for value in values for v in str(value).split(",") if v.strip())


def choices(text: str, known, option: str, what: str) -> list[str]:
    """``"a,b"`` → ``["a", "b"]``, at least one, each one of ``known``; an unknown one names ``option``
    and ``what`` it is."""
    chosen = list(comma_joined((text,)))
    unknown = [v for v in chosen if v not in known]
    if unknown or not chosen:
        problem = f"unknown {what}(s) {', '.join(unknown)}" if unknown else f"no {what} given"
        raise click.BadParameter(f"{problem}; choose from {', '.join(known)}", param_hint=option)
    return chosen


def key_values(pairs: tuple[str, ...], option: str) -> dict:
    """``("epochs=3", "image_size=64")`` → ``{"epochs": 3, "image_size": 64}`` (numbers parsed)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def input_run(help: str, then: str | None = None):
    """Decorate a command whose input is a run folder: ``--run RUN`` as in every command, or, as
    before, RUN as the first positional. ``then`` names one more positional (``DATA``), passed as
    its lowercase keyword; the command receives ``run_dir``."""
    wanted = 1 if then else 0
    form = f" {then}" if then else ""

    def decorate(command):
        @functools.wraps(command)
        def with_run(*args, positionals: tuple[Path, ...], run_option: Path | None, **kwargs):
            if run_option is None and len(positionals) == wanted + 1:
                run_option, positionals = positionals[0], positionals[1:]
            if run_option is None or len(positionals) != wanted:
                raise click.UsageError(f"expected --run RUN{form} (or RUN{form}), got "
                                       f"{' '.join(map(str, positionals)) or 'no positional'}"
                                       + (f" with --run {run_option}" if run_option else ""))
            if then:
                kwargs[then.lower()] = positionals[0]
            return command(*args, run_dir=Path(run_option), **kwargs)

        with_run = click.argument("positionals", nargs=-1, metavar=f"[RUN]{form}",
                                  type=click.Path(path_type=Path))(with_run)
        return click.option("--run", "run_option", type=click.Path(file_okay=False, path_type=Path),
                            default=None, help=help)(with_run)
    return decorate


REDO = "Redo steps whose folders hold runs with other settings."  # --overwrite of a command that reuses steps


def device_option(default: str | None = "auto", help: str = "auto (CUDA when present, else CPU), cpu, cuda or cuda:N."):
    """``--device``, as every command that runs a model takes it."""
    return click.option("--device", default=default, show_default=default is not None, help=help)


def overwrite_option(help: str = REDO):
    """``--overwrite``: what it replaces, said by ``help`` (for a command that reuses finished steps,
    :data:`REDO`)."""
    return click.option("--overwrite", is_flag=True, help=help)


RENAMED_UNTIL = "2027-06-01"  # old option names keep working until then (CHANGELOG says so)


class RenamedOption(click.Option):
    """An option with old names (``old=``) that still parse, hidden from ``--help``; using one
    prints one line naming the new spelling."""

    def __init__(self, *args, old: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.old_names = tuple(old)

    @property
    def _old_dest(self) -> str:
        return f"{self.name}__old_name"

    def add_to_parser(self, parser, ctx) -> None:
        super().add_to_parser(parser, ctx)
        if self.old_names:  # the old names, stored under their own key so that a use can be told
            saved = self.opts, self.secondary_opts, self.name
            self.opts, self.secondary_opts, self.name = list(self.old_names), [], self._old_dest
            try:
                super().add_to_parser(parser, ctx)
            finally:
                self.opts, self.secondary_opts, self.name = saved

    def consume_value(self, ctx, opts):
        if self._old_dest in opts:
            click.echo(f"note: {'/'.join(self.old_names)} is now {self.opts[0]} (the old name works until "
                       f"{RENAMED_UNTIL})", err=True)
            given = opts[self._old_dest]
            if self.multiple and self.name in opts:  # old and new spellings both repeated: all count
                given = list(opts[self.name]) + list(given)
            opts = {**opts, self.name: given}
        return super().consume_value(ctx, opts)


def renamed_option(*decls, old: tuple[str, ...], **kwargs):
    """``click.option(*decls, **kwargs)`` that also accepts the ``old`` names (:class:`RenamedOption`)."""
    return click.option(*decls, cls=RenamedOption, old=old, **kwargs)
