"""HTML report -> PDF: headless Chromium's print-to-PDF, else WeasyPrint, else a clear error."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from planner.errors import InputProblem, PlannerInputError
from planner.report.browser import find_chromium, print_pdf

HOW_TO = (
    "a PDF renderer: install Debian's chromium (apt-get install chromium) or any Chrome/"
    "Chromium (PLANNER_CHROMIUM=/path/to/binary), or `pip install weasyprint`; "
    "the HTML report prints to PDF from any browser too"
)


class NoPdfRenderer(PlannerInputError):
    def __init__(self) -> None:
        super().__init__([InputProblem("--format", "", "pdf", HOW_TO)])


def pdf_renderer() -> str | None:
    """ "chromium", "weasyprint", or None."""
    if find_chromium():
        return "chromium"
    if importlib.util.find_spec("weasyprint") is not None:
        return "weasyprint"
    return None


def write_pdf(html: Path, pdf: Path) -> Path:
    renderer = pdf_renderer()
    if renderer == "chromium":
        return print_pdf(html, pdf)
    if renderer == "weasyprint":
        import weasyprint  # type: ignore[import-not-found]

        weasyprint.HTML(filename=str(html)).write_pdf(str(pdf))
        return pdf
    raise NoPdfRenderer()
