"""Shared pieces of the CLI tests: an output folder a user already owns, and a stand-in
for a solve that must not happen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

USER_FILE, USER_TEXT = "keep.txt", "user data"


def occupied_out(tmp_path: Path) -> Path:
    """A non-empty folder holding one file of the user's (`--out` must never touch it)."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / USER_FILE).write_text(USER_TEXT)
    return out


def must_not_run(what: str) -> Callable[..., None]:
    """A replacement for a solving function that fails the test if it is called."""

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{what} before the output folder was checked")

    return fail
