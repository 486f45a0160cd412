"""Errors the user can act on.

Every problem with user input becomes an `InputProblem`: where it is (file, row or field),
what value was found and what was expected. Loaders collect *all* problems before raising
one `PlannerInputError`, so a user fixes a file in one pass instead of one error per run.
The CLI turns `PlannerInputError` into exit code 2 and a readable list, never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class InputProblem:
    """One thing wrong with one input: where, what was found, what was expected."""

    source: str  # file path, or a name such as "--tpot-ms"
    location: str  # "row 4, column ttft_ms", "field memory[0].capacity_gb", "" for whole file
    value: object
    expected: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.location}" if self.location else self.source
        return f"{where}: got {self.value!r}; expected {self.expected}"


class PlannerInputError(Exception):
    """Bad input. Carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[InputProblem]):
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the input:"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """A suffix like " (did you mean 'h100-sxm'?)" or "" when nothing is close."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_id(source: str, location: str, value: str, choices: Iterable[str]) -> InputProblem:
    """Problem for an id that is not in a catalog, with a did-you-mean hint."""
    choices = sorted(choices)
    hint = did_you_mean(value, choices)
    shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return InputProblem(source, location, value, f"a known id{hint}; known: {shown}")


def named_in(message: str, given: object) -> object:
    """Of a settings mapping, the entries `message` names (a check across several fields
    says which); anything else as it is."""
    if not isinstance(given, dict):
        return given
    return {k: v for k, v in given.items() if k in message} or given
