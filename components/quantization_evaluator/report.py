"""``report.html``: one self-contained page (inline base64 PNG plots, no scripts, no links) from ``metrics.json``.

Plots: the gated metric of both models per slice, each slice's delta against its threshold, model sizes and batch-1
latencies. Neither the Vertex nor the KFP UI renders it; the same numbers are custom properties of the artifacts.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure  # the object API needs no pyplot backend (no display on workers)

from components.shared.html_page import cell as _fmt
from components.shared.html_page import png as _png
from components.shared.html_page import table as _table

_FLOAT_COLOR, _QUANT_COLOR, _FAIL_COLOR = "#4c72b0", "#dd8452", "#c44e52"
# Slice names come from the data: matplotlib would parse `$...$` in them as mathtext (and fail on an unknown macro
# after Beam has run) or hand them to LaTeX with text.usetex. Drawn as literal text instead.
_LITERAL = {"parse_math": False, "usetex": False}


def _rows(metrics: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("overall", metrics["overall"])] + [(f"{s['feature']}={s['value']}", s) for s in metrics["slices"]]


def _value(entry: dict[str, Any], model: str, metric: str) -> float:
    value = entry[model].get(metric)
    return float("nan") if value is None else value


def _metric_plot(metrics: dict[str, Any]) -> str:
    metric, rows = metrics["metric"], _rows(metrics)
    fig = Figure(figsize=(max(4.0, 1.2 * len(rows)), 3.2))
    ax = fig.subplots()
    xs = range(len(rows))
    for offset, model, color in ((-0.2, "float", _FLOAT_COLOR), (0.2, "quantized", _QUANT_COLOR)):
        bars = ax.bar([x + offset for x in xs], [_value(e, model, metric) for _, e in rows], 0.4, label=model,
                      color=color)
        # Deltas are often a fraction of a percent: print the values, the bar heights alone do not show them.
        ax.bar_label(bars, fmt="%.4g", fontsize=7, rotation=90, padding=2)
    ax.margins(y=0.18)  # room for the labels below the title
    ax.set_xticks(list(xs), [name for name, _ in rows], rotation=20, ha="right", **_LITERAL)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: float vs quantized")
    ax.legend(loc="lower right")
    return _png(fig)


def _delta_plot(metrics: dict[str, Any]) -> str:
    thresholds, rows = metrics["thresholds"], _rows(metrics)
    limits = [thresholds["max_delta"]] + [thresholds["max_slice_delta"]] * (len(rows) - 1)
    deltas = [float("nan") if e["delta"] is None else e["delta"] for _, e in rows]
    fig = Figure(figsize=(max(4.0, 1.2 * len(rows)), 3.2))
    ax = fig.subplots()
    colors = [_FAIL_COLOR if limit is not None and d > limit else _FLOAT_COLOR for d, limit in zip(deltas, limits, strict=True)]
    ax.bar(range(len(rows)), deltas, 0.6, color=colors)
    for x, limit in enumerate(limits):
        if limit is not None:
            ax.hlines(limit, x - 0.4, x + 0.4, colors="black", linestyles="dashed")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(rows)), [name for name, _ in rows], rotation=20, ha="right", **_LITERAL)
    ax.set_ylabel(f"{thresholds['delta_type']} delta")
    ax.set_title("degradation (dashed: threshold; red: over it)")
    return _png(fig)


def _pair_plot(title: str, unit: str, labels: Sequence[str], values: Sequence[float | None]) -> str:
    fig = Figure(figsize=(4.0, 2.6))
    ax = fig.subplots()
    shown = [float("nan") if v is None else v for v in values]
    ax.bar(range(len(labels)), shown, 0.6, color=[_FLOAT_COLOR, _QUANT_COLOR] * (len(labels) // 2))
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(unit)
    ax.set_title(title)
    return _png(fig)


def render_html(metrics: dict[str, Any]) -> str:
    """The report page for a ``metrics.json`` dict; it names the verdict in its title and first heading."""
    metric, verdict, sizes, latency = metrics["metric"], metrics["verdict"], metrics["sizes"], metrics["latency_ms"]
    word = "BLESSED" if verdict["blessed"] else "NOT BLESSED"
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in verdict["reasons"])
    slice_rows = [(name, e["num_examples"], _value(e, "float", metric), _value(e, "quantized", metric), e["delta"],
                   e["agreement"]) for name, e in _rows(metrics)]
    skipped = "".join(f"<li>{html.escape(s['feature'])}={html.escape(s['value'])}: {s['num_examples']} examples</li>"
                      for s in metrics["skipped_slices"])
    models = metrics["models"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>QuantizationEvaluator: {word}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}} th{{background:#eee}}
.verdict{{padding:.5em 1em;color:white;background:{'#55a868' if verdict['blessed'] else _FAIL_COLOR}}}
img{{margin:.5em 1em .5em 0}}</style></head><body>
<h1 class="verdict">{word}</h1>
<p>{html.escape(verdict['reason'])}</p>{f'<ul>{reasons}</ul>' if reasons else ''}
<p>Gate: {metrics['thresholds']['delta_type']} delta of <b>{html.escape(metric)}</b> (degradation, positive = the
quantized model is worse) = {_fmt(verdict['delta'])}, threshold {_fmt(verdict['threshold'])}.
Split <code>{html.escape(metrics['split'])}</code>, label <code>{html.escape(metrics['label_key'])}</code>.</p>
<h2>{html.escape(metric)} per slice</h2>
{_metric_plot(metrics)}{_delta_plot(metrics)}
{_table(["slice", "examples", f"float {metric}", f"quantized {metric}", "delta",
         "agreement" if metrics["task"] == "classification" else "mean relative error"], slice_rows)}
{f'<p>Slices under min_slice_size ({metrics["thresholds"]["min_slice_size"]}), not gated:</p><ul>{skipped}</ul>'
 if skipped else ''}
<h2>Size and latency</h2>
{_pair_plot("model size", "bytes", ["float", "quantized"], [sizes["float_bytes"], sizes["quantized_bytes"]])}
{_pair_plot("batch-1 latency", "ms", ["float p50", "quant p50", "float p95", "quant p95"],
            [latency["float"]["p50_ms"], latency["quantized"]["p50_ms"],
             latency["float"]["p95_ms"], latency["quantized"]["p95_ms"]])}
{_table(["model", "bytes", "p50 ms", "p95 ms", "artifact"],
        [("float", sizes["float_bytes"], latency["float"]["p50_ms"], latency["float"]["p95_ms"],
          models["float"]["uri"]),
         ("quantized", sizes["quantized_bytes"], latency["quantized"]["p50_ms"], latency["quantized"]["p95_ms"],
          models["quantized"]["uri"])])}
<h2>Thresholds</h2>
{_table(list(metrics["thresholds"]), [list(metrics["thresholds"].values())])}
</body></html>
"""
