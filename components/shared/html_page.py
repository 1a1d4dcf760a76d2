"""Pieces of the self-contained HTML reports (the QuantizationEvaluator's ``report.html``, the Quantizer's
``quantization_report.html``): an inline base64 PNG of a matplotlib figure, and a plain table."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure


def png(fig: Figure, alt: str = "plot") -> str:
    """The figure as an ``<img>`` with the PNG inline (no file beside the page, nothing fetched)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="chart" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def cell(value: Any) -> str:
    """A table cell's text: ``n/a`` for None and NaN, yes/no for booleans, 6 significant digits for floats,
    anything else escaped."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.6g}"
    return html.escape(str(value))


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    """An HTML table with a header row (and a CSS class, when given)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>' if cls else f"<table><tr>{head}</tr>{body}</table>"
