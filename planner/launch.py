"""The `planner` console script (and `python -m planner`).

It starts `planner plan`'s report worker (planner.report_worker.prestart) before importing
the CLI, so the worker's preload overlaps the ~0.4 s that typer and rich take to import and
parse; then it runs the CLI, and ends the process without the interpreter's teardown when
that is safe (`exit_now`). Keep this module's imports light."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading


def main() -> None:
    from planner import report_worker

    report_worker.prestart(sys.argv[1:])
    try:
        from planner.cli import main as cli_main

        cli_main()
        code: object = 0
    except SystemExit as exc:  # how typer ends every command
        code = exc.code
    finally:
        report_worker.discard_prestarted()
    exit_now(code)


def exit_code(code: object) -> int:
    """SystemExit's code as the process's exit status (as the interpreter maps it)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def exit_now(code: object) -> None:
    """End the process with `code` once every output is flushed and every atexit handler
    has run, skipping the interpreter's teardown.

    Why: a `planner plan` has pandas, Pyomo, HiGHS and the catalog loaded, and tearing
    them down module by module took 0.25-0.35 s after the last line was printed (measured
    on the bundled example, whose whole run targets 3 s). Nothing is left to do by then:
    every file the CLI writes is closed by its own `with`, the report worker has replied,
    and the atexit handlers (logging, Ray or Dask clients, process pools) run first. Where
    a thread that is not a daemon still runs, the normal exit (which waits for it) is
    kept."""
    status = exit_code(code)
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(not t.daemon for t in others):
        sys.exit(status)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`planner plan | head`)
            stream.flush()
    os._exit(status)


if __name__ == "__main__":  # python -m planner.launch
    main()
