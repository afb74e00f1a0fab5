"""The regulator report's figures: matplotlib charts of the view answers, embedded in the HTML as PNG.

Figure text is English (no CJK font is assumed); the object API keeps pyplot's global state out.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from core.vocabulary import CLASSES, PSI_BANDS
from regulator.suppression import suppressed_mark

CLASS_COLOURS = dict(zip(CLASSES, ("#2e7d32", "#9ccc65", "#ffa726", "#c62828"), strict=True))
"""One colour per class, green (A, low risk) to red (D, high risk)."""


def _figure() -> tuple:
    from matplotlib.figure import Figure  # the object API: no pyplot, no global state

    fig = Figure(figsize=(7.5, 3.6), dpi=110)
    return fig, fig.add_subplot()


def _embed(data: bytes, alt: str, cls: str | None = None) -> str:
    klass = f'class="{cls}" ' if cls else ""
    return f'<img {klass}alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def _img(fig, alt: str) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return _embed(buf.getvalue(), alt)


def png_file(path: str, alt: str) -> str:
    """A PNG file as an embedded half-width image."""
    return _embed(Path(path).read_bytes(), alt, "half")


def class_shares(rows: list[dict]) -> str:
    """Stacked class shares per month (the distribution view ``by="month"``); hidden shares left blank."""
    fig, ax = _figure()
    xs = np.arange(len(rows))
    bottom = np.zeros(len(xs))
    hidden = False
    for c in CLASSES:
        shares = np.array([r["cells"][c]["share"] if r["cells"][c]["share"] is not None else np.nan for r in rows])
        hidden |= bool(np.isnan(shares).any())
        ax.bar(xs, np.nan_to_num(shares), bottom=bottom, color=CLASS_COLOURS[c], label=c, width=0.8)
        bottom += np.nan_to_num(shares)
    ax.set_xticks(xs, [r["key"] for r in rows], rotation=60, fontsize=7)
    ax.set(
        ylabel="share of merchants",
        ylim=(0, 1),
        title="Class shares by month" + (" (suppressed shares left blank)" if hidden else ""),
    )
    ax.legend(ncols=4, fontsize=8, loc="lower left")
    return _img(fig, "class shares by month")


def psi_over_time(rows: list[dict]) -> str:
    """Class and score PSI per month (the stability view's rows) over the PSI bands."""
    stable, shifted = PSI_BANDS["stable"], PSI_BANDS["shifted"]
    fig, ax = _figure()
    xs = np.arange(len(rows))
    top = max([0.3] + [r[k] or 0 for r in rows for k in ("psi_class", "psi_score")]) * 1.1
    ax.axhspan(0, stable, color="#e8f5e9")
    ax.axhspan(stable, shifted, color="#fff8e1")
    ax.axhspan(shifted, top, color="#ffebee")
    for key, name, style in (("psi_class", "class PSI", "o-"), ("psi_score", "score PSI", "s--")):
        ax.plot(xs, [r[key] if r[key] is not None else np.nan for r in rows], style, label=name, ms=4)
    ax.set_xticks(xs, [r["month"] for r in rows], rotation=60, fontsize=7)
    ax.set(ylim=(0, top), ylabel="PSI", title=f"PSI month over month (bands {stable:.2f} / {shifted:.2f})")
    ax.legend(fontsize=8)
    return _img(fig, "PSI over time")


def migration_heatmap(mig: dict, k: int) -> str:
    """Row shares of the migration view as a heatmap; suppressed cells hatched and marked."""
    cols = [*CLASSES, "exited"]
    fig, ax = _figure()
    fig.set_size_inches(5.2, 4.2)
    grid = np.array(
        [[r["cells"][c]["share"] if r["cells"][c]["share"] is not None else np.nan for c in cols] for r in mig["rows"]]
    )
    ax.imshow(np.nan_to_num(grid, nan=0.0), cmap="Blues", vmin=0, vmax=1)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            cell = mig["rows"][i]["cells"][cols[j]]
            text = (
                suppressed_mark(k) if cell["suppressed"] else f"{grid[i, j]:.0%}" if not np.isnan(grid[i, j]) else "-"
            )
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=8,
                color="white" if not np.isnan(grid[i, j]) and grid[i, j] > 0.6 else "black",
            )
            if cell["suppressed"]:
                ax.add_patch(_hatch(j, i))
    ax.set_xticks(range(len(cols)), [*CLASSES, "left"])
    ax.set_yticks(range(len(mig["rows"])), [r["key"] for r in mig["rows"]])
    ax.set(xlabel=f"class in {mig['to']}", ylabel=f"class in {mig['from']}", title="Migration (row shares)")
    return _img(fig, "migration heatmap")


def _hatch(x: float, y: float):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#999999", lw=0)


def default_rates(rows: list[dict], k: int) -> str:
    """Observed default rate per class with its Jeffreys interval, and the mean PD (the outcomes view's rows)."""
    fig, ax = _figure()
    xs = np.arange(len(CLASSES))
    for x, r in zip(xs, rows, strict=True):
        if r["default_rate"] is not None:
            lo, hi = r["interval"]["low"], r["interval"]["high"]
            ax.errorbar(
                x,
                r["default_rate"],
                yerr=[[r["default_rate"] - lo], [hi - r["default_rate"]]],
                fmt="o",
                color=CLASS_COLOURS[r["key"]],
                capsize=4,
            )
        elif r["defaults"]["suppressed"]:
            ax.annotate(
                f"{suppressed_mark(k)} (suppressed)",
                (x, 0),
                xytext=(0, 6),
                textcoords="offset points",
                ha="center",
                fontsize=8,
                color="#b71c1c",
            )
        if r["mean_pd"] is not None:
            ax.plot(x, r["mean_pd"], "k_", ms=16, mew=2)
    ax.set_xticks(xs, [f"{c}" for c in CLASSES])
    ax.set(ylabel="12-month default rate", title="Observed default rate (95% Jeffreys) and mean PD (black bar)")
    return _img(fig, "default rate per class")
