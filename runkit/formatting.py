"""Numbers as every report prints them: percentages, signed differences, mean ± sd, rates with
their intervals. A missing value prints as an en dash."""
from __future__ import annotations

MISSING = "–"


def decimal(value, digits: int = 3) -> str:
    """``0.91234`` → ``0.912``."""
    return MISSING if value is None else f"{value:.{digits}f}"


def pct(value, digits: int = 1) -> str:
    """A rate in [0, 1] as a percentage without the sign: ``0.6912`` → ``69.1``."""
    return MISSING if value is None else f"{100 * value:.{digits}f}"


def signed_pct(value) -> str:
    """A difference of rates in percentage points: ``-0.0076`` → ``-0.8``."""
    return MISSING if value is None else f"{100 * value:+.1f}"


def signed_interval(d: dict | None) -> str:
    """``{"estimate", "low", "high"}`` in points: ``-0.8 [-3.4, +1.8]``; ``undefined`` when absent."""
    if d is None:
        return "undefined"
    return f"{signed_pct(d['estimate'])} [{signed_pct(d['low'])}, {signed_pct(d['high'])}]"


def mean_sd(s: dict | None, scale: float = 100, digits: int = 1) -> str:
    """``{"mean", "std"}`` as ``mean ± sd`` (×``scale``: percent by default)."""
    return MISSING if s is None else f"{scale * s['mean']:.{digits}f} ± {scale * s['std']:.{digits}f}"


def rate_with_ci(r: dict) -> str:
    """``{"rate", "ci95", "k", "n"}`` as ``69.1 % [64.1, 74.6] (204/296)``."""
    return f"{pct(r['rate'])} % [{pct(r['ci95'][0])}, {pct(r['ci95'][1])}] ({r['k']}/{r['n']})"


def interval(d: dict | None) -> str:
    """``{"estimate", "low", "high"}`` as percentages: ``93.4 [88.0, 97.8]``."""
    return MISSING if d is None else f"{pct(d['estimate'])} [{pct(d['low'])}, {pct(d['high'])}]"


def markdown_table(header: list[str], rows, right: tuple[int, ...] = ()) -> list[str]:
    """A markdown table's lines: the header, the rule, one line per row (cells as given, ``None`` as
    :data:`MISSING`); the columns numbered in ``right`` are right-aligned."""
    def line(cells) -> str:
        return "| " + " | ".join(MISSING if c is None else str(c) for c in cells) + " |"

    rule = "| " + " | ".join("---:" if i in right else "---" for i in range(len(header))) + " |"
    return [line(header), rule, *(line(row) for row in rows)]
