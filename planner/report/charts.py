"""Charts, drawn with matplotlib.

The report's four charts are SVG. matplotlib is imported inside the drawing functions only
(`planner plan --no-report` and the Markdown/XLSX writers never load it), and only its
object-oriented API: a `Figure` on a `FigureCanvasSVG`, no pyplot (no figure manager, no
global state). Text stays text (`svg.fonttype: none`): small, searchable, escaped by
matplotlib's SVG writer; ids are salted and the date left out, so the same report gives the
same bytes. Each series is one artist (the bars of a series are one collection). Margins are
fixed, widened only for a legend beside the axes or for rotated labels: tight_layout or
constrained layout would about double the drawing time.

`plot_frontier`, the PNG of `planner perf frontier`, uses pyplot."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def plot_frontier(table: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Tokens/s per MW against tokens/s per user, one line per topology, frontier marked."""
    import matplotlib

    matplotlib.use("Agg")  # before pyplot: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for topo, g in table.groupby("topology", sort=True):
        g = g.sort_values("tokens_per_s_per_user")
        ax.plot(
            g["tokens_per_s_per_user"], g["tokens_per_s_per_mw"], marker="o", ms=3, label=str(topo)
        )
        f = g[g["on_frontier"]]
        ax.scatter(
            f["tokens_per_s_per_user"],
            f["tokens_per_s_per_mw"],
            s=40,
            facecolors="none",
            edgecolors="k",
        )
    ax.set_xlabel("output tokens/s per user")
    ax.set_ylabel("output tokens/s per MW (all-in IT power)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or "Token-economics frontier")
    ax.legend(title="topology (circles: frontier)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------
# Report charts: each takes the report table it draws and returns SVG bytes
# --------------------------------------------------------------------------------------

PART_COLORS = {"capex_usd": "#4c72b0", "rental_usd": "#dd8452", "energy_usd": "#55a868",
               "hosting_usd": "#8172b3"}  # fmt: skip
COST_PANELS = (("all costs", list(PART_COLORS)),
               ("operating costs", ["rental_usd", "energy_usd", "hosting_usd"]))  # fmt: skip
BAR_WIDTH = 0.8
SVG_PARAMS = {
    "svg.fonttype": "none",  # text as <text>, not glyph paths
    "svg.hashsalt": "fleet-planner",  # deterministic clip-path and hatch ids
    "font.size": 9,
    "legend.fontsize": 7,
    "axes.titlesize": 10,
    "axes.titley": 1.0,  # a fixed title position: no tick-label extents to measure for it
    "hatch.color": "#404040",
    "hatch.linewidth": 0.6,
}


def safe_label(text: object) -> str:
    """Text from the inputs shown as is: no mathtext ($...$) interpretation."""
    return str(text).replace("$", r"\$")


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(SVG_PARAMS):
        yield


def _figure(width: float, height: float, **margins: float) -> Figure:
    """A figure on an SVG canvas, with fixed margins (fractions of the figure)."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasSVG(fig)
    fig.subplots_adjust(**margins)
    return fig


def _svg(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def _empty(text: str) -> bytes:
    with _style():
        fig = _figure(7, 1.2)
        fig.text(0.5, 0.5, safe_label(text), ha="center", va="center")
        return _svg(fig)


def _stack(ax: Axes, bottom: list[float], values: list[float], label: str, **kw: Any) -> Any:
    """One series of stacked bars, as one collection, drawn on `bottom` (which it raises)."""
    from matplotlib.collections import PolyCollection

    half = BAR_WIDTH / 2
    verts = []
    for i, v in enumerate(values):
        b, h = bottom[i], v if math.isfinite(v) else 0.0
        if h:
            verts.append([(i - half, b), (i - half, b + h), (i + half, b + h), (i + half, b)])
        bottom[i] = b + h
    bars = PolyCollection(verts, label=safe_label(label), linewidth=0, **kw)
    ax.add_collection(bars, autolim=False)
    return bars


def _categories(ax: Axes, labels: list[str], top: float, rotate: bool | None = None) -> None:
    """Category x axis, labels rotated if `rotate` (None: when they would collide; the bottom
    margin grows to fit them); y from 0 to a little above `top`."""
    ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set_ylim(0.0, top * 1.05 if top > 0 else 1.0)
    fig = ax.get_figure()
    text_pt = max(map(len, labels), default=0) * 0.62 * 9  # about 0.62 em per character
    if rotate is None:
        slot_pt = ax.get_position().width * fig.get_figwidth() * 72 / max(len(labels), 1)
        rotate = text_pt > 0.9 * slot_pt
    if rotate:
        needed = (text_pt * 0.71 + 20) / (fig.get_figheight() * 72)  # 45 degrees, ticks, pad
        fig.subplots_adjust(bottom=max(fig.subplotpars.bottom, min(needed, 0.45)))
    ax.set_xticks(range(len(labels)), [safe_label(p) for p in labels],
                  rotation=45 if rotate else 0, ha="right" if rotate else "center",
                  rotation_mode="anchor")  # fmt: skip
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _legend_outside(ax: Axes, handles: list[Any], ncol: int = 1) -> None:
    """Legend to the right of the axes; the axes narrow to make room for it."""
    fig = ax.get_figure()
    pos = ax.get_position()
    rows = max(1, int(pos.height * fig.get_figheight() * 72 // 12))  # 7 pt text, 1.7 spacing
    ncol = max(ncol, math.ceil(len(handles) / rows))
    legend = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=ncol,
                       borderaxespad=0.0)  # fmt: skip
    width = legend.get_window_extent().width / fig.dpi + 0.1  # inches, and a gap
    fig.subplots_adjust(right=max(0.45, min(0.97, pos.x1 - width / fig.get_figwidth())))


def _log_y(ax: Axes) -> None:
    """Log y axis labelled in plain text ("100k", "2M"): matplotlib's default labels are
    mathtext, whose parser costs more to set up than drawing all four charts."""
    from matplotlib.ticker import EngFormatter, LogFormatter

    eng = EngFormatter(sep="")

    class PlainLogFormatter(LogFormatter):
        # LogFormatter picks which ticks get a label (decades; minor ticks on a short axis).
        def __call__(self, x: float, pos: int | None = None) -> str:
            return eng(x) if super().__call__(x, pos) else ""

    ax.set_yscale("log", subs=(2, 5))  # minor ticks (and grid) at 2 and 5 x 10^k
    ax.yaxis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
    # Minor ticks labelled too when the axis spans less than two decades.
    ax.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 2)))


def _values(series: pd.Series) -> list[float]:
    """Floats with missing values as NaN (a line breaks there)."""
    return [float(v) if v is not None and not pd.isna(v) else math.nan for v in series.tolist()]


def plot_fleet(frame: pd.DataFrame, periods: list[str], title: str) -> bytes:
    """Chips in service per period, stacked by SKU: owned solid, rented hatched."""
    if frame.empty:
        return _empty(f"{title}: no fleet")
    import matplotlib

    tab20 = matplotlib.colormaps["tab20"].colors
    colors = {s: tab20[i % 20] for i, s in enumerate(sorted(str(k) for k in frame["sku"].unique()))}
    with _style():
        fig = _figure(8, 3.6, left=0.09, right=0.98, top=0.9, bottom=0.1)
        ax = fig.add_subplot()
        bottom = [0.0] * len(periods)
        handles = []
        for sku, g in frame.groupby("sku", sort=True):
            chips = ["existing_chips", "purchased_chips", "rented_chips"]
            g = g.set_index("period")[chips].reindex(periods, fill_value=0.0)
            color = colors[str(sku)]
            owned = _values(g["existing_chips"] + g["purchased_chips"])
            handles.append(_stack(ax, bottom, owned, str(sku), facecolor=color))
            rented = _values(g["rented_chips"])
            if any(v > 0 for v in rented):
                handles.append(_stack(ax, bottom, rented, f"{sku} (rented)", facecolor=color,
                                      alpha=0.55, hatch="//"))  # fmt: skip
        ax.set_ylabel("chips in service")
        ax.set_title(safe_label(title))
        _legend_outside(ax, handles, ncol=2)
        _categories(ax, periods, max(bottom))
        return _svg(fig)


def plot_costs(frame: pd.DataFrame, periods: list[str], title: str) -> bytes:
    """Cost per period stacked by part; the right panel shows operating costs alone."""
    if frame.empty:
        return _empty(f"{title}: no costs")
    g = frame.set_index("period").reindex(periods).fillna(0.0)
    with _style():
        fig = _figure(9, 3.4, left=0.08, right=0.98, top=0.82, bottom=0.1, wspace=0.25)
        for k, (sub, parts) in enumerate(COST_PANELS):
            ax = fig.add_subplot(1, 2, k + 1)
            bottom = [0.0] * len(periods)
            handles = [
                _stack(ax, bottom, [v / 1e6 for v in _values(g[part])], part.removesuffix("_usd"),
                       facecolor=PART_COLORS[part])
                for part in parts
            ]  # fmt: skip
            _categories(ax, periods, max(bottom), rotate=True)
            ax.set_ylabel("million USD")
            ax.set_title(sub)
            if k == 0:
                ax.legend(handles=handles, loc="upper right")
        fig.suptitle(safe_label(title))
        return _svg(fig)


def plot_power(frame: pd.DataFrame, periods: list[str], title: str) -> bytes:
    """Facility MW per period (bars), IT MW (line) and the budget (dashed steps) if any."""
    if frame.empty:
        return _empty(f"{title}: no power drawn")
    g = frame.set_index("period").reindex(periods)
    x = list(range(len(periods)))
    it_mw, budget = _values(g["it_mw"]), _values(g["budget_mw"])
    if not any(math.isfinite(v) for v in budget):
        title = f"{title} (no budget set)"
    with _style():
        fig = _figure(8, 3.2, left=0.09, right=0.98, top=0.9, bottom=0.1)
        ax = fig.add_subplot()
        bottom = [0.0] * len(periods)
        facility = _stack(ax, bottom, _values(g["facility_mw"]), "facility (IT x PUE)",
                          facecolor="#4c72b0")  # fmt: skip
        (it,) = ax.plot(x, it_mw, "o-", color="#333333", ms=3, label="IT")
        handles = [it, facility]
        if any(math.isfinite(v) for v in budget):
            (line,) = ax.step(x, budget, where="mid", color="#c44e52", ls="--", label="budget")
            handles.append(line)
        ax.set_ylabel("MW")
        ax.set_title(safe_label(title))
        ax.legend(handles=handles, loc="upper left")
        _categories(
            ax, periods, max(v for v in [*bottom, *it_mw, *budget, 0.0] if math.isfinite(v))
        )
        return _svg(fig)


def plot_operating_frontier(frame: pd.DataFrame, title: str) -> bytes:
    """One curve per decode pool over batch sizes; a star at the batch the plan runs."""
    if frame.empty:
        return _empty(f"{title}: no decode pools to draw")
    import matplotlib

    tab10 = matplotlib.colormaps["tab10"].colors
    with _style():
        fig = _figure(8, 4.4, left=0.1, right=0.98, top=0.92, bottom=0.11)
        ax = fig.add_subplot()
        handles, star_x, star_y, star_c = [], [], [], []
        for i, (name, g) in enumerate(frame.groupby("configuration", sort=False)):
            color = tab10[i % 10]
            curve = g[~g["chosen"]].sort_values("output_tok_s_per_user")
            (line,) = ax.plot(_values(curve["output_tok_s_per_user"]),
                              _values(curve["output_tok_s_per_mw"]), "-o", ms=2.5, color=color,
                              label=safe_label(name))  # fmt: skip
            handles.append(line)
            pick = g[g["chosen"]]
            star_x += _values(pick["output_tok_s_per_user"])
            star_y += _values(pick["output_tok_s_per_mw"])
            star_c += [color] * len(pick)
        if star_x:  # the chosen operating points: one series
            ax.scatter(star_x, star_y, marker="*", s=160, c=star_c, edgecolors="k", zorder=5)
        ax.set_xlabel("output tokens/s per user")
        ax.set_ylabel("output tokens/s per MW (all-in IT power)")
        _log_y(ax)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(safe_label(title))
        _legend_outside(ax, handles)
        return _svg(fig)


class ChartCache:
    """SVGs drawn earlier, reused where a chart's spec (title, periods, frame) is unchanged.

    `planner plan`'s report worker draws the charts from the solved plan while the parent
    still compares fleets and verifies; the final plan differs from that draft only in
    what the charts do not show, so usually nothing is drawn twice. A spec that changed is
    drawn again: the cache never serves a stale chart."""

    def __init__(self) -> None:
        self._drawn: dict[str, tuple[dict[str, Any], bytes]] = {}

    def render(self, charts: dict[str, dict[str, Any]]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for key, spec in charts.items():
            hit = self._drawn.get(key)
            if hit is not None and same_spec(hit[0], spec):
                out[key] = hit[1]
                continue
            drawn = render_charts({key: spec})
            if key in drawn:
                self._drawn[key] = (spec, drawn[key])
                out[key] = drawn[key]
        return out


def same_spec(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal chart specs: same keys, equal frames (values, dtypes and columns), equal rest."""
    if a.keys() != b.keys():
        return False
    for k, va in a.items():
        vb = b[k]
        if isinstance(va, pd.DataFrame) or isinstance(vb, pd.DataFrame):
            if not (
                isinstance(va, pd.DataFrame)
                and isinstance(vb, pd.DataFrame)
                and list(va.columns) == list(vb.columns)
                and va.equals(vb)
            ):
                return False
        elif va != vb:
            return False
    return True


def render_charts(charts: dict[str, dict[str, Any]]) -> dict[str, bytes]:
    """Report.charts -> SVG bytes per chart key."""
    drawers = {"fleet": plot_fleet, "costs": plot_costs, "power": plot_power}
    out: dict[str, bytes] = {}
    for key, spec in charts.items():
        if key == "frontier":
            out[key] = plot_operating_frontier(spec["frame"], spec["title"])
        elif key in drawers:
            out[key] = drawers[key](spec["frame"], spec["periods"], spec["title"])
    return out
