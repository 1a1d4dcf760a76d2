"""Pieces of the self-contained HTML reports (the QuantizationEvaluator's ``report.html``, the Quantizer's
``quantization_report.html``): an inline base64 PNG of a matplotlib figure, and a plain table."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure


def png(fig: Figure, alt: str = "plot") -> str:
    """The figure as an ``<img>`` with the PNG inline (no file beside the page, nothing fetched)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode("ascii")}">'


def cell(value: Any) -> str:
    """A table cell's text: ``n/a`` for None, 6 significant digits for floats, anything else escaped."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.6g}"
    return html.escape(str(value))


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table with a header row."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
