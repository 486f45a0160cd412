"""Demand input: workload classes, their request rates per planning period, and checks.

A demand file is a CSV with one row per (period, workload), or an hourly series with one row
per (timestamp, workload) that is aggregated here to planning periods: the *peak* hourly
rate sizes the fleet, the *mean* prices its energy. demand/README.md has the schema.

Loading runs a sequence of small, pure `check_*` functions over the raw text cells (each
returns a list of `InputProblem`), collects every problem in the file and raises one
`PlannerInputError`; only a file with no problems is turned into a `Demand`.

Row numbers in messages are the ones a spreadsheet shows: the header is row 1, so the first
data row is row 2. Blank lines count as rows (a spreadsheet shows them) but carry no data
and are skipped; a quoted cell spanning several lines is one row.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from planner.catalog import PRECISIONS, Catalog
from planner.errors import InputProblem, PlannerInputError, did_you_mean, unknown_id

# --------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------

REQUIRED_COLUMNS: tuple[str, ...] = (
    "period",
    "workload",
    "model",
    "requests_per_s",
    "prompt_tokens",
    "output_tokens",
    "ttft_ms",
    "tpot_ms",
    "percentile",
)
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "precision",
    "mean_requests_per_s",
    "spec_acceptance",
    "notes",
)
# Optional shape columns whose empty cell is a value of its own (the default), not a gap.
EMPTY_IS_DEFAULT: frozenset[str] = frozenset({"precision", "spec_acceptance"})
# An hourly series has `timestamp` where a per-period file has `period`.
KNOWN_COLUMNS: tuple[str, ...] = (*REQUIRED_COLUMNS, "timestamp", *OPTIONAL_COLUMNS)
# What makes a workload class: the same in every row of one workload.
SHAPE_COLUMNS: tuple[str, ...] = (
    "model",
    "precision",
    "prompt_tokens",
    "output_tokens",
    "ttft_ms",
    "tpot_ms",
    "percentile",
    "spec_acceptance",
)
PERIOD_FREQS: dict[str, str] = {"Q": "quarter", "M": "month", "Y": "year"}
_PERIOD_EXAMPLE: dict[str, str] = {
    "Q": "a quarter like 2026Q1 or 2026-Q1",
    "M": "a month like 2026-01",
    "Y": "a year like 2026",
}


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Demand:
    """Validated demand.

    workloads  workload (index, file order) → model, prompt_tokens (int), output_tokens
               (int), ttft_ms, tpot_ms, percentile (float), precision (str, None = native),
               spec_acceptance (float, NaN = the scenario's spec_acceptance)
    rates      tidy: workload, period (str), requests_per_s (peak hourly rate; for rows
               given per period, the value given), mean_requests_per_s (for energy)
    periods    period (index, chronological, consecutive) → start (Timestamp), hours
               (float, calendar hours), energy_load_factor (Σ mean / Σ peak over workloads)
    """

    workloads: pd.DataFrame
    rates: pd.DataFrame
    periods: pd.DataFrame
    source: str
    period_freq: str = "Q"

    @property
    def period_names(self) -> list[str]:
        return list(self.periods.index)

    def to_planning_tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(periods, demand) in the shapes planner.model_data documents.

        A workload absent from a period has no row there (no demand in that period).
        """
        periods = self.periods[["start", "hours", "energy_load_factor"]].copy()
        periods.index.name = "period"
        demand = self.rates[
            ["workload", "period", "requests_per_s", "mean_requests_per_s"]
        ].reset_index(drop=True)
        return periods, demand


# --------------------------------------------------------------------------------------
# Reading the raw text
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RawTable:
    """A demand CSV as stripped text cells; index = spreadsheet row number (header = 1)."""

    source: str
    header: tuple[str, ...]  # normalised names, in file order, duplicates kept
    cells: pd.DataFrame  # one column per distinct name (first occurrence)

    def has(self, column: str) -> bool:
        return column in self.cells.columns

    def column(self, column: str) -> pd.Series:
        return self.cells[column]

    def cells_of(self, column: str) -> list[tuple[int, str]]:
        """(row, text) pairs of one column; plain lists iterate much faster than Series."""
        col = self.cells[column]
        return list(zip(col.index.tolist(), col.tolist(), strict=True))

    @property
    def is_series(self) -> bool:
        """An hourly series: `timestamp` instead of `period`."""
        return self.has("timestamp") and not self.has("period")

    @property
    def time_column(self) -> str:
        return "timestamp" if self.is_series else "period"


def _normalise_name(name: object) -> str:
    return str(name).strip().lower()


def read_table(path: Path) -> tuple[RawTable | None, list[InputProblem]]:
    """Read a CSV as text without interpreting any cell; problems instead of exceptions."""
    source = str(path)
    if not path.exists():
        return None, [InputProblem(source, "", "no such file", "an existing demand CSV file")]
    if not path.is_file():
        return None, [InputProblem(source, "", "a directory", "a demand CSV file")]
    try:
        raw = pd.read_csv(
            path,
            header=None,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError:
        return None, [InputProblem(source, "", "empty file", "a header row and data rows")]
    except pd.errors.ParserError as exc:
        return None, [_parser_problem(source, exc)]
    except UnicodeDecodeError as exc:
        return None, [InputProblem(source, "", f"undecodable bytes ({exc.reason})", "UTF-8 text")]
    except OSError as exc:
        return None, [InputProblem(source, "", str(exc), "a readable file")]
    raw = raw.fillna("").astype(str).apply(lambda c: c.str.strip())
    header = [_normalise_name(v) for v in raw.iloc[0]]
    data = raw.iloc[1:]
    data.index = range(2, len(data) + 2)
    keep = [i for i, name in enumerate(header) if name or (data.iloc[:, i] != "").any()]
    names = [header[i] or f"(unnamed column {i + 1})" for i in keep]
    first = [j for j, name in enumerate(names) if name not in names[:j]]
    cells = data.iloc[:, [keep[j] for j in first]]
    cells.columns = [names[j] for j in first]
    cells = cells[(cells != "").any(axis=1)]  # blank lines: no data to lose
    table = RawTable(source, tuple(names), cells)
    if cells.empty:
        return None, [InputProblem(source, "", "no data rows", "at least one row below the header")]
    return table, []


def _parser_problem(source: str, exc: Exception) -> InputProblem:
    message = str(exc).replace("Error tokenizing data. C error: ", "")
    line = re.search(r"line (\d+)", message)
    row = re.search(r"starting at row (\d+)", message)
    where = f"line {line[1]}" if line else f"row {int(row[1]) + 1}" if row else ""
    return InputProblem(source, where, message, "well-formed CSV (check quotes and commas)")


# --------------------------------------------------------------------------------------
# Cell parsers: text → value, or ValueError whose message says what was expected
# --------------------------------------------------------------------------------------


def _number(text: str, expected: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ValueError(expected) from None
    if not math.isfinite(x):
        raise ValueError("a finite " + expected.removeprefix("a "))
    return x


def parse_positive(text: str, unit: str) -> float:
    expected = f"a number > 0 ({unit})"
    if _number(text, expected) <= 0:
        raise ValueError(expected)
    return float(text)


def parse_non_negative(text: str, unit: str) -> float:
    expected = f"a number >= 0 ({unit})"
    if _number(text, expected) < 0:
        raise ValueError(expected)
    return float(text)


def parse_tokens(text: str) -> int:
    expected = "a whole number of tokens > 0"
    x = _number(text, expected)
    if x <= 0 or x != int(x):
        raise ValueError(expected)
    return int(x)


def parse_percentile(text: str) -> float:
    """99 or p99 → 99.0; in (0, 100). 0.99 is refused: it is p99 written as a fraction."""
    expected = "a percentile in (0, 100), e.g. 99 for p99"
    x = _number(text[1:] if text[:1] in "pP" else text, expected)
    if not 0 < x < 100:
        raise ValueError(expected)
    if x <= 1:
        raise ValueError(f"{expected} (this looks like a fraction; write 99, not 0.99)")
    return x


def parse_acceptance(text: str) -> float | None:
    """'' → None (the scenario's spec_acceptance); otherwise a rate in [0, 1]."""
    if text == "":
        return None
    expected = "a per-token draft acceptance rate in [0, 1], e.g. 0.7, or empty for the default"
    try:
        x = float(text)
    except ValueError:
        raise ValueError(expected) from None
    if not 0.0 <= x <= 1.0:  # also NaN
        raise ValueError(expected + (f" (write {x / 100:g}, not {text})" if 1 < x <= 100 else ""))
    return x


def own_acceptance(workload: Mapping[str, Any]) -> float | None:
    """A workload record's own spec_acceptance (as plan.json records workloads); None when
    it has none (absent, None or NaN), so the scenario's applies."""
    own = workload.get("spec_acceptance")
    if own is None or math.isnan(float(own)):
        return None
    return float(own)


def parse_precision(text: str) -> str | None:
    """'' → None (the model's native precision); otherwise one of PRECISIONS."""
    value = text.lower()
    if value == "":
        return None
    if value not in PRECISIONS:
        hint = did_you_mean(value, PRECISIONS)
        raise ValueError(f"one of {', '.join(PRECISIONS)}, or empty for native{hint}")
    return value


_QUARTER = re.compile(r"^(\d{4})\s*-?\s*[Qq]([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_YEAR = re.compile(r"^(\d{4})$")


def parse_period(text: str, freq: str) -> pd.Period:
    """A planning period: a label at `freq` (2026Q1, 2026-Q1, 2026-01, 2026) or a date.

    A date (2026-02-15, or a full ISO timestamp) stands for the period that contains it.
    A label at another frequency (a quarter in a monthly plan) is refused, not converted.
    """
    expected = (
        f"{_PERIOD_EXAMPLE[freq]}, or a date like 2026-01-01 (read as its {PERIOD_FREQS[freq]})"
    )
    if m := _QUARTER.match(text):
        if freq == "Q":
            return pd.Period(year=int(m[1]), quarter=int(m[2]), freq="Q")
        raise ValueError(f"{expected}; planning periods are {PERIOD_FREQS[freq]}s, not quarters")
    if m := _MONTH.match(text):
        if freq == "M" and 1 <= int(m[2]) <= 12:
            return pd.Period(year=int(m[1]), month=int(m[2]), freq="M")
        raise ValueError(expected)
    if _YEAR.match(text):
        if freq == "Y":
            return pd.Period(year=int(text), freq="Y")
        raise ValueError(f"{expected}; planning periods are {PERIOD_FREQS[freq]}s, not years")
    try:
        return pd.Period(parse_timestamp(text), freq=freq)
    except ValueError:
        raise ValueError(expected) from None


def parse_timestamp(text: str) -> pd.Timestamp:
    """ISO 8601 → naive UTC timestamp (an offset is converted to UTC; none means UTC)."""
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("an ISO 8601 timestamp like 2026-01-01T13:00:00Z") from None
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return pd.Timestamp(t)


def _rate_parser(table: RawTable) -> Callable[[str], float]:
    if table.is_series:  # an hour with no traffic is a real observation
        return partial(parse_non_negative, unit="requests/s")
    return partial(parse_positive, unit="requests/s; leave the row out for no demand")


def _parsers(table: RawTable, freq: str) -> dict[str, Callable[[str], object]]:
    return {
        "period": partial(parse_period, freq=freq),
        "timestamp": parse_timestamp,
        "requests_per_s": _rate_parser(table),
        "mean_requests_per_s": partial(parse_positive, unit="requests/s"),
        "prompt_tokens": parse_tokens,
        "output_tokens": parse_tokens,
        "ttft_ms": partial(parse_positive, unit="milliseconds"),
        "tpot_ms": partial(parse_positive, unit="milliseconds"),
        "percentile": parse_percentile,
        "precision": parse_precision,
        "spec_acceptance": parse_acceptance,
    }


def _parsed(table: RawTable, column: str, parse: Callable[[str], object]) -> dict[int, object]:
    """Row → parsed value for the cells of `column` that parse (empty cells skipped)."""
    out: dict[int, object] = {}
    if not table.has(column):
        return out
    memo: dict[str, object] = {}  # shape columns repeat one value on every row
    failed = object()
    for row, text in table.cells_of(column):
        if text == "" and column not in EMPTY_IS_DEFAULT:
            continue
        if text not in memo:
            try:
                memo[text] = parse(text)
            except ValueError:
                memo[text] = failed
        if memo[text] is not failed:
            out[row] = memo[text]
    return out


def _where(row: int, column: str) -> str:
    return f"row {row}, column {column}"


# --------------------------------------------------------------------------------------
# Checks: each takes the raw table and returns the problems it finds
# --------------------------------------------------------------------------------------


def check_columns(table: RawTable) -> list[InputProblem]:
    """Missing required columns, unknown or repeated columns, period and timestamp both."""
    src, header, out = table.source, table.header, []
    if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        return [InputProblem(src, "row 1", header[0], "comma-separated columns")]
    required = [c for c in REQUIRED_COLUMNS if not (c == "period" and table.has("timestamp"))]
    for name in required:
        if not table.has(name):
            alt = " (or timestamp, for an hourly series)" if name == "period" else ""
            out.append(
                InputProblem(src, "row 1 (header)", f"no column {name}", f"a column {name}{alt}")
            )
    for i, name in enumerate(header, start=1):
        if name.startswith("(unnamed column"):
            out.append(InputProblem(src, f"row 1, {name[1:-1]}", "", "a column name"))
        elif name not in KNOWN_COLUMNS:
            hint = did_you_mean(name, KNOWN_COLUMNS)
            known = ", ".join(KNOWN_COLUMNS)
            out.append(
                InputProblem(
                    src, f"row 1, column {i}", name, f"a known column{hint}; known: {known}"
                )
            )
        elif name in header[: i - 1]:
            out.append(InputProblem(src, f"row 1, column {i}", name, "each column once"))
    if table.has("period") and table.has("timestamp"):
        out.append(
            InputProblem(
                src, "row 1 (header)", "period and timestamp", "one of period or timestamp"
            )
        )
    if table.is_series and table.has("mean_requests_per_s"):
        out.append(
            InputProblem(
                src,
                "row 1, column mean_requests_per_s",
                "mean_requests_per_s",
                "no mean column in an hourly series (the mean is computed from the series)",
            )
        )
    return out


def check_required_values(table: RawTable) -> list[InputProblem]:
    """Empty cells in required columns."""
    out = []
    for column in (*REQUIRED_COLUMNS, "timestamp"):
        if not table.has(column):
            continue
        for row, text in table.cells_of(column):
            if text == "":
                out.append(
                    InputProblem(table.source, _where(int(row), column), "", "a value (required)")
                )
    return out


def check_cell_values(table: RawTable, freq: str) -> list[InputProblem]:
    """Every typed cell parses: numbers, token counts, percentiles, precisions, periods."""
    out = []
    for column, parse in _parsers(table, freq).items():
        if not table.has(column):
            continue
        complaint: dict[str, str | None] = {}  # text → what was expected, None if fine
        for row, text in table.cells_of(column):
            if text == "" and column not in EMPTY_IS_DEFAULT:
                continue  # required: check_required_values; optional: the default applies
            if text not in complaint:
                complaint[text] = _complaint(parse, text)
            if (expected := complaint[text]) is not None:
                out.append(InputProblem(table.source, _where(row, column), text, expected))
    return out


def _complaint(parse: Callable[[str], object], text: str) -> str | None:
    try:
        parse(text)
    except ValueError as exc:
        return str(exc)
    return None


def check_models(
    table: RawTable, targets: frozenset[str], drafts: frozenset[str]
) -> list[InputProblem]:
    """Model ids are servable targets of the catalog (not drafts, not unknown)."""
    if not table.has("model"):
        return []
    out = []
    for row, model in table.cells_of("model"):
        if model == "" or model in targets:
            continue
        where = _where(int(row), "model")
        if model in drafts:
            hint = did_you_mean(model, targets)
            expected = f"a target model; {model} is a draft model for speculative decoding{hint}"
            out.append(InputProblem(table.source, where, model, expected))
        else:
            out.append(unknown_id(table.source, where, model, targets))
    return out


def check_duplicates(table: RawTable, freq: str) -> list[InputProblem]:
    """One row per (period, workload) — or per (timestamp, workload) in a series."""
    time_col = table.time_column
    if not (table.has(time_col) and table.has("workload")):
        return []
    parse = parse_timestamp if table.is_series else partial(parse_period, freq=freq)
    times = _parsed(table, time_col, parse)
    workloads = dict(table.cells_of("workload"))
    seen: dict[tuple[object, str], int] = {}
    out = []
    for row, when in times.items():
        key = (when, workloads[row])
        if key[1] == "":
            continue
        if key in seen:
            value = (table.column(time_col)[row], key[1])
            expected = (
                f"one row per ({time_col}, workload): row {seen[key]} already has "
                f"{time_col} {when} for workload {key[1]!r}"
            )
            out.append(
                InputProblem(
                    table.source, f"row {row}, columns {time_col} and workload", value, expected
                )
            )
        else:
            seen[key] = row
    return out


def check_consecutive_periods(table: RawTable, freq: str) -> list[InputProblem]:
    """The planning horizon has no holes: every period from first to last has a row."""
    time_col = table.time_column
    if table.is_series:
        times = _parsed(table, time_col, parse_timestamp).values()
        periods = set(pd.DatetimeIndex(list(times)).to_period(freq))
    else:
        periods = set(_parsed(table, time_col, partial(parse_period, freq=freq)).values())
    if len(periods) < 2:
        return []
    lo, hi = min(periods), max(periods)  # type: ignore[type-var]
    missing = [str(p) for p in pd.period_range(lo, hi, freq=freq) if p not in periods]
    if not missing:
        return []
    shown = ", ".join(missing[:8]) + (", ..." if len(missing) > 8 else "")
    return [
        InputProblem(
            table.source,
            f"column {time_col}",
            f"no rows for {shown}",
            f"consecutive periods from {lo} to {hi} (a workload may skip a period, "
            "but every period of the horizon needs at least one row)",
        )
    ]


def check_mean_not_above_peak(table: RawTable) -> list[InputProblem]:
    """A period's mean rate cannot exceed the rate it is sized for."""
    if not (table.has("mean_requests_per_s") and table.has("requests_per_s")):
        return []
    peak = _parsed(table, "requests_per_s", _rate_parser(table))
    mean = _parsed(table, "mean_requests_per_s", partial(parse_positive, unit=""))
    return [
        InputProblem(
            table.source,
            _where(row, "mean_requests_per_s"),
            table.column("mean_requests_per_s")[row],
            f"at most requests_per_s ({table.column('requests_per_s')[row]}): the mean "
            "cannot exceed the peak",
        )
        for row, m in mean.items()
        if row in peak and m > peak[row]  # type: ignore[operator]
    ]


def check_one_shape_per_workload(
    table: RawTable, freq: str, targets: frozenset[str]
) -> list[InputProblem]:
    """Every row of a workload has the same model, precision, lengths and SLA.

    Cells that are wrong on their own (unparseable, unknown model) are left to the other
    checks and not compared here.
    """
    if not table.has("workload"):
        return []
    parsers = {**_parsers(table, freq), "model": partial(_known, choices=targets)}
    rows_of: dict[str, list[int]] = {}
    for row, name in table.cells_of("workload"):
        if name:
            rows_of.setdefault(name, []).append(row)
    out = []
    for column in SHAPE_COLUMNS:
        values = _parsed(table, column, parsers[column])
        for name, rows in rows_of.items():
            parsed_rows = [r for r in rows if r in values]
            out.extend(_shape_conflicts(table, column, name, parsed_rows, values))
    return out


def _known(text: str, choices: frozenset[str]) -> str:
    if text not in choices:
        raise ValueError("a known id")
    return text


def _shape_conflicts(
    table: RawTable, column: str, workload: str, rows: Sequence[int], values: dict[int, object]
) -> list[InputProblem]:
    if len({values[r] for r in rows}) < 2:
        return []
    counts = Counter(values[r] for r in rows)
    usual = max(counts, key=lambda v: counts[v])  # most common; ties: first seen
    ref = next(r for r in rows if values[r] == usual)
    cell = table.column(column)
    shown = cell[ref] or ("(empty: native)" if column == "precision" else "(empty: the default)")
    return [
        InputProblem(
            table.source,
            _where(int(r), column),
            cell[r],
            f"{shown} as in row {ref}: workload {workload!r} has one shape and SLA in every "
            "row; for a different model, precision, length or SLA use a new workload name",
        )
        for r in rows
        if values[r] != usual
    ]


def compact(problems: Iterable[InputProblem]) -> list[InputProblem]:
    """Merge problems that differ only in their row ("rows 2-169, column model")."""
    rows: dict[tuple[str, str, str, str], list[int]] = {}
    first: dict[tuple[str, str, str, str], InputProblem] = {}
    order: list[tuple[str, str, str, str] | InputProblem] = []
    for p in problems:
        m = re.fullmatch(r"row (\d+), column (\S+)", p.location)
        if not m:
            order.append(p)
            continue
        key = (p.source, m[2], repr(p.value), p.expected)
        if key not in rows:
            rows[key], first[key] = [], p
            order.append(key)
        rows[key].append(int(m[1]))
    out = []
    for item in order:
        if isinstance(item, InputProblem):
            out.append(item)
            continue
        found = sorted(set(rows[item]))
        if len(found) == 1:
            out.append(first[item])
        else:
            where = f"rows {_row_ranges(found)}, column {item[1]}"
            out.append(InputProblem(item[0], where, first[item].value, item[3]))
    return out


def _row_ranges(rows: Sequence[int]) -> str:
    parts, start = [], rows[0]
    for prev, cur in zip(rows, [*rows[1:], None], strict=True):
        if cur != prev + 1:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = cur  # type: ignore[assignment]
    return ", ".join(parts)


# --------------------------------------------------------------------------------------
# Building the result from a table that passed every check
# --------------------------------------------------------------------------------------


def workload_table(table: RawTable, freq: str) -> pd.DataFrame:
    """One row per workload (first row of each; the checks made them all equal)."""
    parsers = _parsers(table, freq)
    first = table.cells.drop_duplicates("workload")
    precision = first["precision"] if table.has("precision") else pd.Series("", first.index)
    acceptance = (
        first["spec_acceptance"] if table.has("spec_acceptance") else pd.Series("", first.index)
    )
    frame = pd.DataFrame(
        {
            "model": first["model"].astype(str),
            "prompt_tokens": first["prompt_tokens"].map(parsers["prompt_tokens"]).astype("int64"),
            "output_tokens": first["output_tokens"].map(parsers["output_tokens"]).astype("int64"),
            "ttft_ms": first["ttft_ms"].map(parsers["ttft_ms"]).astype(float),
            "tpot_ms": first["tpot_ms"].map(parsers["tpot_ms"]).astype(float),
            "percentile": first["percentile"].map(parsers["percentile"]).astype(float),
            "precision": pd.Series(
                [parse_precision(p) for p in precision], index=first.index, dtype=object
            ),
            "spec_acceptance": pd.Series(
                [parse_acceptance(a) for a in acceptance], index=first.index, dtype=float
            ),
        }
    )
    frame.index = pd.Index(first["workload"].astype(str), name="workload")
    return frame


def aggregate_hourly(series: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Hourly series → per-period rates.

    `series` has columns workload, timestamp (naive UTC), requests_per_s. Samples are
    averaged within each clock hour (several samples per hour allowed); per workload and
    period, requests_per_s is the peak of those hourly rates and mean_requests_per_s their
    mean over the hours present (missing hours are not counted as zero).
    """
    hourly = (
        series.assign(hour=series["timestamp"].dt.floor("h"))
        .groupby(["workload", "hour"], sort=False)["requests_per_s"]
        .mean()
        .reset_index()
    )
    hourly["period"] = hourly["hour"].dt.to_period(freq)
    agg = hourly.groupby(["workload", "period"], sort=False)["requests_per_s"].agg(["max", "mean"])
    agg = agg.rename(columns={"max": "requests_per_s", "mean": "mean_requests_per_s"})
    return _tidy_rates(agg.reset_index())


def _tidy_rates(rates: pd.DataFrame) -> pd.DataFrame:
    """Sort chronologically, then by workload; period as its string label."""
    rates = rates.assign(_ord=[p.ordinal for p in rates["period"]])
    rates = rates.sort_values(["_ord", "workload"], kind="stable").drop(columns="_ord")
    return pd.DataFrame(
        {
            "workload": rates["workload"].astype(str).to_numpy(),
            "period": [str(p) for p in rates["period"]],
            "requests_per_s": rates["requests_per_s"].astype(float).to_numpy(),
            "mean_requests_per_s": rates["mean_requests_per_s"].astype(float).to_numpy(),
        }
    )


def rate_table(table: RawTable, freq: str) -> pd.DataFrame:
    """Tidy rates from a checked table: given per period, or aggregated from a series."""
    parsers = _parsers(table, freq)
    cells = table.cells
    rate = cells["requests_per_s"].map(parsers["requests_per_s"]).astype(float)
    if table.is_series:
        series = pd.DataFrame(
            {
                "workload": cells["workload"],
                "timestamp": pd.to_datetime(cells["timestamp"].map(parse_timestamp)),
                "requests_per_s": rate,
            }
        )
        return aggregate_hourly(series, freq)
    mean = rate.copy()
    if table.has("mean_requests_per_s"):
        given = cells["mean_requests_per_s"] != ""
        mean[given] = cells.loc[given, "mean_requests_per_s"].map(parsers["mean_requests_per_s"])
    return _tidy_rates(
        pd.DataFrame(
            {
                "workload": cells["workload"],
                "period": cells["period"].map(parsers["period"]),
                "requests_per_s": rate,
                "mean_requests_per_s": mean.astype(float),
            }
        )
    )


def period_table(rates: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Periods in chronological order with their start, hours and energy load factor.

    energy_load_factor = Σ mean / Σ peak over the workloads of the period (0 if no demand).
    """
    totals = rates.groupby("period", sort=False)[["requests_per_s", "mean_requests_per_s"]].sum()
    periods = sorted((pd.Period(p, freq=freq) for p in totals.index), key=lambda p: p.ordinal)
    names = [str(p) for p in periods]
    peak = totals.loc[names, "requests_per_s"].to_numpy()
    mean = totals.loc[names, "mean_requests_per_s"].to_numpy()
    factor = [min(1.0, m / k) if k > 0 else 0.0 for m, k in zip(mean, peak, strict=True)]
    return pd.DataFrame(
        {
            "start": [p.start_time for p in periods],
            "hours": [((p + 1).start_time - p.start_time) / pd.Timedelta(hours=1) for p in periods],
            "energy_load_factor": factor,
        },
        index=pd.Index(names, name="period"),
    )


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------


def check_period_freq(period_freq: str) -> tuple[str | None, list[InputProblem]]:
    freq = str(period_freq).strip().upper()
    if freq in PERIOD_FREQS:
        return freq, []
    expected = "Q (quarters), M (months) or Y (years)"
    return None, [InputProblem("period_freq", "", period_freq, expected)]


def load_demand(
    path: Path | str,
    model_ids: Iterable[str],
    *,
    period_freq: str = "Q",
    draft_ids: Iterable[str] = (),
) -> Demand:
    """Load and validate a demand CSV; raise PlannerInputError listing every problem.

    model_ids: the servable (target) model ids. draft_ids: draft models of the catalog, only
    to say "that is a draft model" instead of "unknown id" when a row names one.
    """
    freq, problems = check_period_freq(period_freq)
    if freq is None:
        raise PlannerInputError(problems)
    table, problems = read_table(Path(path))
    if table is None:
        raise PlannerInputError(problems)
    targets = frozenset(model_ids)
    checks: list[Callable[[RawTable], list[InputProblem]]] = [
        check_columns,
        check_required_values,
        partial(check_cell_values, freq=freq),
        partial(check_models, targets=targets, drafts=frozenset(draft_ids) - targets),
        partial(check_duplicates, freq=freq),
        partial(check_consecutive_periods, freq=freq),
        check_mean_not_above_peak,
        partial(check_one_shape_per_workload, freq=freq, targets=targets),
    ]
    for check in checks:
        problems.extend(check(table))
    if problems:
        raise PlannerInputError(compact(problems))
    rates = rate_table(table, freq)
    return Demand(
        workloads=workload_table(table, freq),
        rates=rates,
        periods=period_table(rates, freq),
        source=str(path),
        period_freq=freq,
    )


def catalog_model_ids(catalog: Catalog) -> tuple[frozenset[str], frozenset[str]]:
    """(target ids, draft ids) of a catalog, for load_demand."""
    models = catalog.models.values()
    targets = frozenset(m.id for m in models if m.role == "target")
    drafts = frozenset(m.id for m in models if m.role != "target")
    return targets, drafts


def demand_summary(demand: Demand) -> pd.DataFrame:
    """One row per workload for the CLI: model, shape, SLA, first/last period rate, growth.

    Rates are the sizing rates (peak). growth_x = last / first; a workload that skips
    periods is summarised over the periods it has.
    """
    w = demand.workloads
    order = {p: i for i, p in enumerate(demand.periods.index)}
    rates = demand.rates.assign(_ord=demand.rates["period"].map(order)).sort_values("_ord")
    by = rates.groupby("workload", sort=False)
    first, last = by.first(), by.last()
    out = pd.DataFrame(
        {
            "model": w["model"],
            "precision": w["precision"].map(lambda p: p or "native"),
            "prompt_tokens": w["prompt_tokens"],
            "output_tokens": w["output_tokens"],
            "ttft_ms": w["ttft_ms"],
            "tpot_ms": w["tpot_ms"],
            "percentile": w["percentile"],
            "first_period": first["period"].reindex(w.index),
            "last_period": last["period"].reindex(w.index),
            "first_rps": first["requests_per_s"].reindex(w.index),
            "last_rps": last["requests_per_s"].reindex(w.index),
            "peak_rps": by["requests_per_s"].max().reindex(w.index),
        },
        index=w.index,
    )
    out["growth_x"] = out["last_rps"] / out["first_rps"]
    if "spec_acceptance" in w and w["spec_acceptance"].notna().any():  # only when given
        own = w["spec_acceptance"].map(lambda a: "default" if a != a else f"{a:g}")
        out.insert(out.columns.get_loc("percentile") + 1, "spec_acceptance", own)
    return out
