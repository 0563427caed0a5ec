"""How a number that may be missing is shown to people: one spelling for every report.

A score is None where nothing was scored (a rejected program, an evaluation that failed), a
token count where the endpoint sent none; every report shows that as "-", never "None" or a
made-up 0.
"""

from __future__ import annotations


def number(value: float | None, spec: str = ".2f") -> str:
    """`value` as `format(value, spec)` (two decimals unless told otherwise: "+.2f" where signs
    line a column up, "d" for counts), or "-" where there is none."""
    return "-" if value is None else format(value, spec)
