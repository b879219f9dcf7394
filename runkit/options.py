"""Option values shared by the experiment, study and perf commands: one list convention
(comma-separated) and KEY=VALUE settings."""
from __future__ import annotations

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


def choices(text: str, known, option: str, what: str) -> list[str]:
    """``"a,b"`` → ``["a", "b"]``, each one of ``known``; an unknown one names ``option`` and ``what`` it is."""
    chosen = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in known]
    if unknown:
        raise click.BadParameter(f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(known)}",
                                 param_hint=option)
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
