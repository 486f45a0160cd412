"""Load the report renderers on a background thread while the plan is being solved.

HiGHS releases the GIL while it solves, so what a thread does meanwhile (import jinja2,
XlsxWriter and matplotlib, compile the HTML template, draw one throwaway chart so the
font cache is loaded) costs almost no wall time on a machine with a second core: the
default `planner plan` writes its reports about 0.5-0.8 s sooner. Nothing here is needed
for correctness; a failure is swallowed, and the real import later, on the main thread,
raises it where the CLI reports it.
"""

from __future__ import annotations

import contextlib
import threading


def _load() -> None:
    with contextlib.suppress(Exception):
        import xlsxwriter  # noqa: F401  (imported by planner.report.xlsx only when writing)

        from planner.report import charts, html

        html._environment().get_template(html.TEMPLATE)
        charts._empty("warm-up")


def preload_in_background() -> threading.Thread:
    """Start loading the renderers; join the thread before rendering (matplotlib's rc
    settings are process-wide, so two threads must not draw at once)."""
    thread = threading.Thread(target=_load, name="report-preload", daemon=True)
    thread.start()
    return thread
