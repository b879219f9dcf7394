"""One-line errors for every ``cxr`` command: bad input is reported, never shown as a traceback.

A user error is a ``ValueError`` or ``OSError`` (bad value, unreadable or missing file) or any
exception defined in the project's packages (each names the file or option it is about). Other
exceptions are bugs and keep their traceback. ``--debug`` on ``cxr`` or ``CXR_DEBUG=1`` shows the
traceback of user errors too.
"""
from __future__ import annotations

import os

import click

PROJECT_PACKAGES = frozenset({"cxrdata", "runkit", "cyclegan", "classifier", "pipelines"})
DEBUG_ENV = "CXR_DEBUG"


def is_user_error(exc: BaseException) -> bool:
    """True for the errors that bad input causes (see the module docstring)."""
    return (isinstance(exc, (ValueError, OSError))
            or (isinstance(exc, Exception) and type(exc).__module__.split(".")[0] in PROJECT_PACKAGES))


def one_line(exc: BaseException) -> str:
    """The exception's message on one line; a foreign exception also names its type."""
    message = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    if type(exc).__module__.split(".")[0] not in PROJECT_PACKAGES and not isinstance(exc, OSError):
        message += f" ({type(exc).__name__}; --debug or {DEBUG_ENV}=1 shows the traceback)"
    return message


def debugging(ctx: click.Context) -> bool:
    return bool(os.environ.get(DEBUG_ENV)) or bool(ctx.find_root().params.get("debug"))


INTERRUPTED_STATUS = 130  # 128 + SIGINT, as a shell reports a program stopped by Ctrl-C


class OneLineErrors(click.Group):
    """A command group whose commands report user errors as ``Error: <one line>``, exit status 1,
    and a stop by Ctrl-C as one line (what was kept, how to continue), exit status 130."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            if debugging(ctx):
                raise
            click.echo(str(exc) or "interrupted", err=True)
            raise SystemExit(INTERRUPTED_STATUS) from None
        except Exception as exc:
            if debugging(ctx) or not is_user_error(exc):
                raise
            raise click.ClickException(one_line(exc)) from None
