"""Write `planner plan`'s reports in a second process that starts with the command.

Why: on the bundled example the reports cost about as much as the plan itself: importing
matplotlib, jinja2 and XlsxWriter (~1 s) and drawing four charts (~0.5 s), all on one
core while the other sits idle. So `python -m planner.report_worker` is started before the
CLI is imported, when the command line is a `planner plan` that writes reports
(`prestart`, called by the `planner` launcher, planner.launch), or else first thing in
`planner plan`. The worker:

1. imports the renderers and loads the catalog while the parent plans;
2. gets the solved plan as a *draft* (`ReportWorker.draft`, before the parent compares
   fleets and verifies) and draws the charts from it;
3. gets the saved plan folder (`ReportWorker.submit`) and writes the reports from it
   exactly as `planner report` would (plan.json plus verify.json and
   unserved_explained.csv), reusing each chart whose data did not change since the draft
   (planner.report.charts.ChartCache) and the frontier curves where the decode pools did
   not (planner.report.operating.FrontierCache), and replies with the paths.

The parent prints the plan meanwhile and waits for the reply before it exits, so the files
are there when the command returns. Nothing is lost if the worker fails: if it could not
start, died, or replied with an error, the parent writes the reports itself
(`planner.cli_report.write_plan_reports`), where an error in the report code surfaces as it
always did. PLANNER_REPORT_WORKER=0 writes reports in-process.

Messages parent -> worker are pickles on stdin (both ends are this package, same
interpreter); the reply is one JSON line on stdout. The parent imports this module before
anything heavy: keep its top level light.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

ENV_SWITCH = "PLANNER_REPORT_WORKER"
COMMAND = [sys.executable, "-m", "planner.report_worker"]


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


# Options after which `planner plan` writes no reports (see cli_plan.plan_cmd).
_NO_REPORT_OPTIONS = ("--no-write", "--no-report", "--pareto", "--help")
_prestarted: list[ReportWorker] = []


def prestart(argv: list[str]) -> None:
    """Start the worker before the CLI is even imported, when `argv` (the command line
    after the program name) looks like a `planner plan` that will write reports.

    Typer and rich take ~0.2 s to import and another ~0.2 s to build and parse the
    command line; a worker started here has that much more of its preload done when the
    plan arrives. Only a guess: `planner plan` takes the worker if it wants one
    (`take_prestarted`) and starts its own otherwise, and `discard_prestarted` kills one
    that was not taken (a usage error, `--help`, a guess that missed)."""
    args = [a for a in argv if a != "--debug"]  # the one global option before the command
    if not args or args[0] != "plan" or not enabled():
        return
    if any(a.split("=", 1)[0] in _NO_REPORT_OPTIONS or a == "-h" for a in args[1:]):
        return
    worker = ReportWorker.start()
    if worker is not None:
        _prestarted.append(worker)


def take_prestarted() -> ReportWorker | None:
    """The worker `prestart` started, handed over once; None if there is none."""
    return _prestarted.pop() if _prestarted else None


def discard_prestarted() -> None:
    """Stop a prestarted worker nobody took (it has written nothing)."""
    while _prestarted:
        _prestarted.pop().close()


class ReportWorker:
    """The parent's handle on one worker process (one plan, one reply)."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr: IO[bytes]) -> None:
        self._proc = proc
        self._stderr = stderr
        self._submitted = False
        self.error: str | None = None  # why the worker's reply could not be used, if so

    @classmethod
    def start(cls, command: list[str] | None = None) -> ReportWorker | None:
        """Launch the worker; None if it cannot be started (the parent writes in-process)."""
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close(), with the worker)
        try:
            proc = subprocess.Popen(
                command or COMMAND,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        except OSError:
            stderr.close()
            return None
        return cls(proc, stderr)

    @property
    def returncode(self) -> int | None:
        """The worker's exit code; None while it runs."""
        return self._proc.poll()

    def draft(self, plan: Any) -> None:
        """The solved plan, for drawing the charts early (optional; never waited for)."""
        self._send(("draft", plan))

    def submit(self, folder: Path, formats: list[str] | None = None) -> None:
        """Hand the saved plan folder over (formats: the report defaults if None)."""
        self._submitted = True
        self._send(("write", str(folder), formats))
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except OSError as exc:
                self.error = self.error or f"{type(exc).__name__}: {exc}"

    def result(self) -> list[Path] | None:
        """Wait for the reply: the paths written, or None (why: .error)."""
        line = b""
        if self.error is None and self._proc.stdout is not None:
            try:
                line = self._proc.stdout.readline()
            except (OSError, ValueError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"
        self._proc.wait()
        reply = _parse(line)
        if reply.get("ok") is True:
            return [Path(p) for p in reply["paths"]]
        self.error = (
            reply.get("error")
            or self.error
            or self._stderr_tail()
            or f"worker exited with code {self._proc.returncode} and no reply"
        )
        return None

    def close(self) -> None:
        """Stop the worker. One never asked to write is killed at once: it has written
        nothing, and the parent (failed, or planning no reports) must not wait for it."""
        if self._proc.poll() is None:
            if not self._submitted:
                self._proc.kill()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None and not pipe.closed:
                with contextlib.suppress(OSError):  # a pipe to a dead worker
                    pipe.close()
        self._stderr.close()

    def __enter__(self) -> ReportWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, message: tuple[Any, ...]) -> None:
        if self.error is not None or self._proc.stdin is None or self._proc.stdin.closed:
            return
        try:
            pickle.dump(message, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()
        except (OSError, ValueError, pickle.PicklingError) as exc:  # the worker is gone
            self.error = f"{type(exc).__name__}: {exc}"

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].decode("utf-8", "replace").strip()


def _parse(line: bytes) -> dict[str, Any]:
    try:
        reply = json.loads(line) if line.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"error": f"unreadable reply {line[:200]!r}"}
    return reply if isinstance(reply, dict) else {"error": f"unexpected reply {line[:200]!r}"}


# -- the worker side ----------------------------------------------------------------------


def _read_messages(stdin: IO[bytes], inbox: queue.Queue[tuple[Any, ...] | None]) -> None:
    """Drain stdin as it comes (so the parent never blocks on a full pipe); None at EOF."""
    try:
        while True:
            inbox.put(pickle.load(stdin))
    except (EOFError, OSError, pickle.UnpicklingError):
        inbox.put(None)


# What writing the default reports imports (the charts draw on a bare SVG Figure).
PRELOADED = (
    "matplotlib.backends.backend_svg",
    "matplotlib.figure",
    "planner.report.charts",
    "planner.report.html",
    "planner.report.markdown",
    "planner.report.xlsx",
    "xlsxwriter",  # planner.report.xlsx imports it only when writing
    "planner.cli_report",
)


def preload() -> Any:
    """Import what writing the default reports needs and load the catalog, while the
    parent is still planning. Returns the catalog as `planner report` loads it (the plan's
    scenario overrides are applied on top when the report is built).

    No throw-away charts: drawing toy charts first once made the real ones ~2x faster, but
    with plain-text tick labels (charts._log_y) a process's first real charts cost what
    later ones do (0.43-0.58 s for the four, measured both ways), and the warm-up's ~0.45 s
    only delayed the moment the worker is ready for the draft."""
    import importlib

    from planner.catalog import load_catalog

    for module in PRELOADED:
        importlib.import_module(module)
    from planner.report.html import template

    template()
    return load_catalog()


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """Answer one plan: draw charts from its draft, then write its reports and reply."""
    inbox: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
    threading.Thread(target=_read_messages, args=(stdin, inbox), daemon=True).start()
    sys.stdout = sys.stderr  # anything a library prints must not garble the reply
    try:
        catalog, failed = preload(), None
    except Exception as exc:  # replied below, once asked
        catalog, failed = None, f"preload: {type(exc).__name__}: {exc}"
    from planner.report.charts import ChartCache
    from planner.report.operating import FrontierCache

    charts, frontier = ChartCache(), FrontierCache()
    while (message := inbox.get()) is not None:
        if message[0] == "draft" and failed is None:
            _draw_draft(message[1], catalog, charts, frontier)
        elif message[0] == "write":
            reply = _write(message[1], message[2], catalog, (charts, frontier), failed)
            stdout.write(json.dumps(reply).encode() + b"\n")
            stdout.flush()
            return 0
    return 0  # the parent closed without asking: nothing to write


def _draw_draft(plan: Any, catalog: Any, charts: Any, frontier: Any) -> None:
    """Charts, frontier curves and the draft-acceptance table from the draft plan. Best
    effort: the final write computes again whatever is missing or changed."""
    from planner.report.build import chart_specs, report_catalog
    from planner.report.view import PlanView

    try:
        charts.render(chart_specs(plan, catalog, frontier_cache=frontier))
        frontier.speculation.table(PlanView(plan, report_catalog(plan, catalog)[0]))
    except Exception:  # the final report redraws, and reports any real error
        return


def _write(
    folder_text: str, formats: list[str] | None, catalog: Any, caches: Any, failed: str | None
) -> dict[str, Any]:
    try:
        if failed:
            raise RuntimeError(failed)
        from planner.cli_report import load_plan, plan_file, sidecars
        from planner.report import DEFAULT_FORMATS, write_reports

        folder = Path(folder_text)
        plan = load_plan(plan_file(folder))
        paths = write_reports(
            plan, folder, formats or list(DEFAULT_FORMATS), catalog, charts=caches[0],
            frontier=caches[1], **sidecars(folder),
        )  # fmt: skip
        return {"ok": True, "paths": [str(p) for p in paths]}
    except Exception as exc:  # reported to the parent, which then writes in-process
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


if __name__ == "__main__":
    from planner.launch import collect_less_often  # the worker's imports and charts too

    collect_less_often()
    code = serve(sys.stdin.buffer, sys.stdout.buffer)
    # The reply is out and every file is closed: skip the interpreter's teardown of
    # matplotlib, pandas and the rest (~0.4 s the parent would otherwise wait for).
    os._exit(code)
