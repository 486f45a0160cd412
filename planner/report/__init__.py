"""Renderers and charts. Reports read plans and tables; they never solve.

`write_reports(plan, out_dir, formats, catalog)` writes report.html / .md / .xlsx / .json /
.pdf; `build_report` gives the same content as data (planner.report.model.Report).
"""

from planner.report.write import DEFAULT_FORMATS, FORMATS, parse_formats, write_reports

__all__ = ["DEFAULT_FORMATS", "FORMATS", "parse_formats", "write_reports"]
