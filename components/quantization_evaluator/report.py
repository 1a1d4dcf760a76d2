"""``report.html``: one self-contained page (inline base64 PNG plots, no scripts, no links) from ``metrics.json``.

What an engineer deciding to ship needs, top to bottom: the verdict and its rule; the run (pipeline, run id, model
sha256); three charts across the candidates (size, batch-1 latency with ratios to float, each gated metric's
degradation with its confidence bound against the threshold); per-slice degradations sorted worst first; for
classifiers the confusion matrices of both models, their disagreement matrix and per-class recall; each candidate's
quantization settings, ops by dtype and coarse-input warnings (from its ``quantization_report.json``); where latency
was measured. Neither the Vertex nor the KFP UI renders it; the numbers people gate on are custom properties too.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure  # the object API needs no pyplot backend (no display on workers)
from matplotlib.ticker import FuncFormatter, NullLocator

from quantgate.components.shared.html_page import cell as _fmt
from quantgate.components.shared.html_page import png as _png
from quantgate.components.shared.html_page import table as _table

_FLOAT_COLOR, _QUANT_COLOR, _FAIL_COLOR, _OK_COLOR = "#4c72b0", "#dd8452", "#c44e52", "#55a868"
_CANDIDATE_COLORS = ("#dd8452", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974")
# Slice names come from the data: matplotlib would parse `$...$` in them as mathtext (and fail on an unknown macro
# after Beam has run) or hand them to LaTeX with text.usetex. Drawn as literal text instead.
_LITERAL = {"parse_math": False, "usetex": False}
_LIGHT, _DARK = (247, 251, 255), (8, 48, 107)  # matplotlib's "Blues" ends, for the matrix tables
_FONT = 10
_MAX_SLICES_DRAWN = 30


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _bytes(n: Any) -> str:
    if n is None:
        return "n/a"
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or not base or math.isnan(value) or math.isnan(base):
        return ""
    return f"{value / base:.2g}x"


def candidates(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Every scored candidate as one shape: ``name``, ``id``, ``overall``, ``slices``, ``sizes``, ``latency``,
    ``verdict``, ``quantization_report``, ``selected``. A metrics.json of one candidate has no ``candidates``
    section; its top level is that candidate."""
    if metrics.get("candidates"):
        return metrics["candidates"]
    quantized = metrics["models"]["quantized"]
    return [{"name": quantized.get("quantization_mode") or "quantized", "id": quantized.get("id"),
             "uri": quantized.get("uri"), "overall": metrics["overall"], "slices": metrics["slices"],
             "sizes": metrics["sizes"], "latency": metrics["latency_ms"]["quantized"], "verdict": metrics["verdict"],
             "float_tflite_latency": metrics["latency_ms"].get("float_tflite"),
             "latency_comparisons": metrics["latency_ms"].get("comparisons"),
             "quantization_report": quantized.get("quantization_report"),
             "evaluated_sha256": quantized.get("evaluated_sha256"), "selected": True}]


def _gated(metrics: dict[str, Any]) -> list[tuple[str, float]]:
    thresholds = metrics["thresholds"]
    return [(thresholds["metric"], thresholds["max_delta"])] + [tuple(p) for p in thresholds.get("extra_metrics", [])]


def _tick(name: str) -> str:
    """A candidate's name on two lines (``int8`` / ``#7``), so neighbouring tick labels do not overlap."""
    return name.replace(" #", "\n#")


def _annotate(ax: Any, bars: Any, texts: Sequence[str]) -> None:
    for bar, text in zip(bars, texts, strict=True):
        if text:
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=_FONT - 1)


def _size_chart(metrics: dict[str, Any], cands: list[dict[str, Any]]) -> str:
    """Bars: the float SavedModel's variables, the float32 TFLite conversion (the honest baseline), each candidate;
    each candidate labelled with its ratio to the float32 TFLite (else to the variables)."""
    first = cands[0]["sizes"]
    report = cands[0].get("quantization_report") or {}
    float_tflite = first.get("float_tflite_bytes") or (report.get("sizes") or {}).get("float_tflite_bytes")
    names, values, colors = [], [], []
    if first.get("float_bytes") is not None:
        names.append("float\n(SavedModel vars)")
        values.append(first["float_bytes"])
        colors.append("#a1b6d8")
    if float_tflite is not None:
        names.append("float32\nTFLite")
        values.append(float_tflite)
        colors.append(_FLOAT_COLOR)
    base = float_tflite or first.get("float_bytes")
    texts = [_bytes(v) for v in values]
    for i, cand in enumerate(cands):
        size = cand["sizes"].get("quantized_bytes")
        names.append(_tick(cand["name"]))
        values.append(_number(size))
        colors.append(_CANDIDATE_COLORS[i % len(_CANDIDATE_COLORS)])
        texts.append(f"{_bytes(size)}  {_ratio(size, base)}".strip())
    fig = Figure(figsize=(max(4.5, 1.5 * len(names)), 3.4))
    ax = fig.subplots()
    bars = ax.bar(range(len(names)), values, 0.6, color=colors)
    _annotate(ax, bars, texts)
    ax.set_xticks(range(len(names)), names, fontsize=_FONT, **_LITERAL)
    ax.set_ylabel("bytes", fontsize=_FONT)
    ax.margins(y=0.2)
    ax.set_title("model size (ratio to the float32 TFLite)" if float_tflite else "model size", fontsize=_FONT + 1)
    return _png(fig, "model size")


def _measured(latency: dict[str, Any], key: str, measure: str) -> float:
    """``p50_ms`` / ``p95_ms`` of the measure the gate uses (kernel, else end to end)."""
    if measure == "kernel" and latency.get(f"kernel_{key}") is not None:
        return _number(latency[f"kernel_{key}"])
    return _number(latency.get(key))


def _latency_chart(metrics: dict[str, Any], cands: list[dict[str, Any]]) -> str:
    """Bars: the float SavedModel's call, the float32 TFLite model of the same function (when the Quantizer wrote
    it: same interpreter and threads as the candidates), each candidate; ratios to the float32 TFLite (the
    like-for-like baseline), else to the SavedModel."""
    saved_model_latency = metrics["latency_ms"]["float"]
    float_tflite_latency = metrics["latency_ms"].get("float_tflite")
    measure = metrics["thresholds"].get("latency_measure", "end_to_end")
    float_rows = [("float\n(SavedModel)" if float_tflite_latency else "float", saved_model_latency, "#a1b6d8")]
    if float_tflite_latency:
        float_rows.append(("float32\nTFLite", float_tflite_latency, _FLOAT_COLOR))
    float_latency = float_tflite_latency or saved_model_latency
    rows = float_rows + [
        (c["name"], c["latency"], _CANDIDATE_COLORS[i % len(_CANDIDATE_COLORS)]) for i, c in enumerate(cands)]
    fig = Figure(figsize=(max(4.5, 2.0 * len(rows)), 3.6))
    ax = fig.subplots()
    xs = np.arange(len(rows))
    for offset, key, alpha in ((-0.2, "p50_ms", 1.0), (0.2, "p95_ms", 0.55)):
        values = [_measured(latency, key, measure) for _, latency, _ in rows]
        bars = ax.bar(xs + offset, values, 0.38, color=[color for *_, color in rows], alpha=alpha,
                      label=key.replace("_ms", ""))
        base = _measured(float_latency, key, measure)
        _annotate(ax, bars, [f"{v:.2g}" + (f"\n{_ratio(v, base)}" if i >= len(float_rows) else "")
                             for i, v in enumerate(values)])
    ax.set_xticks(xs, [_tick(name) for name, *_ in rows], fontsize=_FONT, **_LITERAL)
    ax.set_ylabel("ms per call", fontsize=_FONT)
    shown = [v for _, latency, _ in rows for v in (_measured(latency, "p50_ms", measure),) if v > 0]
    if shown and max(shown) / min(shown) > 30:  # a tiny TFLite call next to a SavedModel call: bars would vanish
        ax.set_yscale("log")
        # Plain decimal tick labels: the default log formatter typesets every tick as mathtext (half the report's
        # rendering time).
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_ylabel("ms per call (log scale)", fontsize=_FONT)
    ax.margins(y=0.3)
    ax.legend(["p50", "p95 (lighter)"], fontsize=_FONT - 1, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    baseline = "float32 TFLite" if float_tflite_latency else "float"
    ax.set_title(f"batch-1 latency ({measure.replace('_', ' ')}), p50 and p95 (ratio to {baseline})",
                 fontsize=_FONT + 1)
    return _png(fig, "batch-1 latency")


def _speedup(comparison: dict[str, Any] | None) -> str:
    """``2.31x faster`` / ``1.25x slower`` of a ``latency_comparisons`` entry, ``n/a`` without one."""
    speedup = (comparison or {}).get("speedup")
    if speedup is None or not math.isfinite(speedup) or speedup <= 0:
        return "n/a"
    return f"{speedup:.2f}x faster" if speedup >= 1 else f"{1 / speedup:.2f}x slower"


def _latency_comparison_text(chosen: dict[str, Any]) -> str:
    """The chosen candidate's batch-1 p50 against the float32 TFLite of the same function (like for like) and
    against the float SavedModel's call; empty for a metrics.json without the comparisons."""
    comparisons = chosen.get("latency_comparisons") or {}
    like, saved = comparisons.get("float_tflite"), comparisons.get("float_saved_model")
    if not like and not saved:
        return ""
    name = html.escape(chosen["name"])
    parts = []
    if like:
        parts.append(f"<b>{name} vs float32 TFLite of the same function</b> (same interpreter, same threads, "
                     f"{html.escape(like['measure'].replace('_', ' '))} p50): {_fmt(like['quantized_p50_ms'])} vs "
                     f"{_fmt(like['baseline_p50_ms'])} ms, <b>{_speedup(like)}</b>")
    if saved:
        parts.append(f"{name} vs the float SavedModel call ({html.escape(saved['measure'].replace('_', ' '))} p50, "
                     f"mostly TensorFlow's per-call overhead at batch 1): {_fmt(saved['quantized_p50_ms'])} vs "
                     f"{_fmt(saved['baseline_p50_ms'])} ms, {_speedup(saved)}")
    return "<p>Batch-1 latency: " + "; ".join(parts) + ".</p>"


def _delta_chart(metrics: dict[str, Any], cands: list[dict[str, Any]]) -> str:
    """Each candidate's degradation of each gated metric with its confidence interval, and the threshold: the
    axis spans the deltas and thresholds, not 0-1, so a 0.005 delta is visible."""
    gated = _gated(metrics)
    confidence = metrics["thresholds"].get("confidence", 0.95)
    fig = Figure(figsize=(max(4.5, 1.6 * len(cands) * len(gated) + 1.5), 3.6))
    ax = fig.subplots()
    labels, x = [], 0
    for metric, max_delta in gated:
        start = x
        for i, cand in enumerate(cands):
            entry = cand["overall"].get("deltas", {}).get(metric, {"delta": cand["overall"].get("delta")})
            delta = _number(entry.get("delta"))
            lower, upper = _number(entry.get("lower")), _number(entry.get("upper"))
            color = _FAIL_COLOR if delta > max_delta else _CANDIDATE_COLORS[i % len(_CANDIDATE_COLORS)]
            ax.bar(x, 0.0 if math.isnan(delta) else delta, 0.6, color=color)
            if not (math.isnan(lower) or math.isnan(upper) or math.isnan(delta)):
                ax.errorbar(x, delta, yerr=[[delta - lower], [upper - delta]], color="black", capsize=5, lw=1.2)
            text = "n/a" if math.isnan(delta) else f"{delta:+.4f}"
            ax.annotate(text, (x, 0 if math.isnan(delta) else delta), xytext=(8, 0), textcoords="offset points",
                        fontsize=_FONT - 1, va="center")
            labels.append(f"{_tick(cand['name'])}\n{metric}" if len(gated) > 1 else _tick(cand["name"]))
            x += 1
        ax.hlines(max_delta, start - 0.45, x - 0.55, colors="black", linestyles="dashed")
        ax.annotate(f"max {max_delta:g}", (x - 0.55, max_delta), xytext=(3, 3), textcoords="offset points",
                    fontsize=_FONT - 1)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(x), labels, fontsize=_FONT, **_LITERAL)
    ax.set_xlim(-0.6, x - 0.4 + 0.6)
    ax.margins(y=0.25)
    ax.set_ylabel(f"{metrics['thresholds']['delta_type']} degradation", fontsize=_FONT)
    ax.set_title(f"degradation vs threshold (bars: point, whiskers: {confidence:.0%} one-sided bounds)",
                 fontsize=_FONT + 1)
    return _png(fig, "degradation against the threshold")


def _slice_rows(cand: dict[str, Any], metric: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    rows = []
    for entry in [{"feature": None, "value": "overall", **cand["overall"]}, *cand["slices"]]:
        name = "overall" if entry["feature"] is None else f"{entry['feature']}={entry['value']}"
        bounds = entry.get("deltas", {}).get(metric, {"delta": entry.get("delta")})
        rows.append((name, entry, bounds))
    return rows


def _slice_section(metrics: dict[str, Any], cand: dict[str, Any]) -> str:
    metric = metrics["metric"]
    rows = _slice_rows(cand, metric)
    rows.sort(key=lambda r: -_number(r[2].get("delta")) if not math.isnan(_number(r[2].get("delta"))) else math.inf)
    table = _table(["slice", "examples", f"float {metric}", f"quantized {metric}", "delta", "lower", "upper",
                    "agreement" if metrics["task"] == "classification" else "mean relative error"],
                   [(name, e["num_examples"], e["float"].get(metric), e["quantized"].get(metric), b.get("delta"),
                     b.get("lower"), b.get("upper"), e.get("agreement")) for name, e, b in rows])
    sliced = [(name, b) for name, _, b in rows if name != "overall"]
    degraded = [(name, b) for name, b in sliced if _number(b.get("delta")) > 0]
    if not sliced:
        chart = "<p>No slices (no <code>slicing_feature_keys</code>).</p>"
    elif not degraded:
        chart = '<p class="good">No degradation on any slice.</p>'
    else:
        chart = _slice_chart(metrics, degraded[:_MAX_SLICES_DRAWN])
    skipped = "".join(f"<li>{html.escape(s['feature'])}={html.escape(s['value'])}: {s['num_examples']} examples</li>"
                      for s in metrics["skipped_slices"])
    skipped = (f'<p>Slices under min_slice_size ({metrics["thresholds"]["min_slice_size"]}), not gated:</p>'
               f"<ul>{skipped}</ul>") if skipped else ""
    return f"{chart}<p>Sorted worst first; bounds are one-sided at the gate's confidence.</p>{table}{skipped}"


def _slice_chart(metrics: dict[str, Any], rows: list[tuple[str, dict[str, Any]]]) -> str:
    limit = metrics["thresholds"].get("max_slice_delta")
    fig = Figure(figsize=(7.0, 0.45 * len(rows) + 1.4))
    ax = fig.subplots()
    deltas = [_number(b.get("delta")) for _, b in rows]
    ys = np.arange(len(rows))[::-1]
    colors = [_FAIL_COLOR if limit is not None and d > limit else _QUANT_COLOR for d in deltas]
    ax.barh(ys, deltas, 0.6, color=colors)
    for y, (_, b), d in zip(ys, rows, deltas, strict=True):
        upper = _number(b.get("upper"))
        if not math.isnan(upper):
            ax.plot([d, upper], [y, y], color="black", lw=1)
        ax.annotate(f"{d:+.4f}", (d, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=_FONT - 1)
    if limit is not None:
        ax.axvline(limit, color="black", linestyle="dashed")
    ax.set_yticks(ys, [name for name, _ in rows], fontsize=_FONT, **_LITERAL)
    ax.set_xlabel(f"{metrics['thresholds']['delta_type']} degradation of {metrics['metric']} (line: to the upper "
                  "bound)", fontsize=_FONT)
    ax.margins(x=0.25)
    ax.set_title("degraded slices" + (f" (dashed: max_slice_delta {limit:g})" if limit is not None else ""),
                 fontsize=_FONT + 1)
    return _png(fig, "degraded slices")


def _matrix_table(matrix: list[list[int]], title: str, row_label: str, column_label: str) -> str:
    """A count matrix as a heat-map table: exact numbers, shaded light to dark blue by count (as fast as text,
    where a matplotlib image of it cost a tenth of the evaluator's fixed time)."""
    values = np.array(matrix)
    high = max(int(values.max()), 1) if values.size else 1
    head = "".join(f"<th>{c}</th>" for c in range(len(values)))
    rows = []
    for i, row in enumerate(values):
        cells = []
        for value in row:
            share = value / high
            rgb = ", ".join(str(round(light + (dark - light) * share)) for light, dark in zip(_LIGHT, _DARK, strict=True))
            text = "white" if share > 0.5 else "black"
            cells.append(f'<td style="background:rgb({rgb});color:{text}">{int(value)}</td>')
        rows.append(f"<tr><th>{i}</th>{''.join(cells)}</tr>")
    return (f'<table class="matrix"><caption>{html.escape(title)}</caption><tr><th>{html.escape(row_label)} \\ '
            f"{html.escape(column_label)}</th>{head}</tr>{''.join(rows)}</table>")


def _classifier_section(cand: dict[str, Any]) -> str:
    overall = cand["overall"]
    confusion = overall.get("confusion")
    if not confusion:
        return ""
    charts = (_matrix_table(confusion["float"], "float: label x predicted", "label", "predicted class")
              + _matrix_table(confusion["quantized"], f"{cand['name']}: label x predicted", "label",
                              "predicted class")
              + _matrix_table(confusion["disagreement"], f"float x {cand['name']} predictions", "float class",
                              f"{cand['name']} class"))
    off = int(np.sum(confusion["disagreement"]) - np.trace(np.array(confusion["disagreement"])))
    recall_f, recall_q = overall["float"].get("recall", {}), overall["quantized"].get("recall", {})
    recall = _table(["class", "examples", "float recall", f"{cand['name']} recall", "change"],
                    [(c, int(np.sum(confusion["float"][int(c)])), recall_f[c], recall_q.get(c),
                      None if recall_q.get(c) is None or recall_f[c] is None else recall_q[c] - recall_f[c])
                     for c in recall_f])
    return (f"<h3>{html.escape(cand['name'])}</h3>{charts}"
            f"<p>{off} of {overall['num_examples']} examples predicted differently by the two models.</p>"
            f"<h4>Per-class recall</h4>{recall}")


def _quantization_section(cand: dict[str, Any]) -> str:
    report = cand.get("quantization_report")
    name = html.escape(cand["name"])
    if not report:
        return f"<h3>{name}</h3><p>No quantization_report.json beside this model.</p>"
    rep = report.get("representative_dataset") or {}
    sizes = report.get("sizes") or {}
    settings = [("mode", report.get("mode")), ("engine", report.get("engine")),
                ("signature", report.get("signature_name")), ("I/O dtype", report.get("io_dtype")),
                ("calibration examples", rep.get("num_examples")), ("calibration seed", rep.get("seed")),
                ("calibration data", rep.get("uri")),
                ("denylisted ops", ", ".join(report.get("denylisted_ops") or []) or "none"),
                ("float fallback allowed", report.get("allow_float_fallback")),
                ("float32 TFLite bytes", sizes.get("float_tflite_bytes")),
                ("ratio to float32 TFLite", sizes.get("ratio_to_float_tflite")),
                ("sha256", report.get("sha256"))]
    readiness = report.get("edge_tpu_readiness")
    if readiness:
        settings.append(("Edge TPU / integer-only ready (static check)", readiness.get("ready")))
    ops = report.get("ops") or {}
    dtypes = sorted({d for counts in (ops.get("ops") or {}).values() for d in counts})
    op_table = _table(["op", *dtypes], [(op, *[counts.get(d, 0) for d in dtypes])
                                         for op, counts in sorted((ops.get("ops") or {}).items())])
    coarse = [(f, s.get("step"), s.get("std"), s.get("step_over_std"), s.get("distinct_levels"))
              for f, s in sorted((report.get("input_steps") or {}).items()) if s.get("coarse")]
    warnings = list(report.get("warnings") or [])
    if readiness and not readiness.get("ready"):
        warnings += [f"Edge TPU: {r}" for r in readiness.get("reasons") or []]
    warned = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    coarse_table = (_table(["coarse input", "int8 step", "std", "step / std", "distinct levels"], coarse)
                    if coarse else "<p>No coarse int8 input.</p>")
    return (f"<h3>{name}</h3>{_table(['setting', 'value'], settings, 'left')}"
            f"<h4>Ops by dtype</h4>{op_table}<h4>Inputs</h4>{coarse_table}"
            + (f'<ul class="warn">{warned}</ul>' if warned else ""))


def _candidate_table(metrics: dict[str, Any], cands: list[dict[str, Any]]) -> str:
    metric = metrics["metric"]
    measure = metrics["thresholds"].get("latency_measure", "end_to_end")
    rows = []
    for cand in cands:
        verdict, overall = cand["verdict"], cand["overall"]
        rows.append((("▶ " if cand.get("selected") else "") + cand["name"], cand.get("id"),
                     "passes" if verdict["blessed"] else "fails", cand["sizes"].get("quantized_bytes"),
                     _measured(cand["latency"], "p50_ms", measure), _measured(cand["latency"], "p95_ms", measure),
                     _speedup((cand.get("latency_comparisons") or {}).get("float_tflite")),
                     overall["quantized"].get(metric),
                     overall.get("delta"), overall.get("delta_upper"), "; ".join(verdict.get("reasons") or [])))
    return _table(["candidate", "model id", "thresholds", "bytes", f"{measure} p50 ms", f"{measure} p95 ms",
                   "vs float32 TFLite (kernel)", f"quantized {metric}",
                   "delta", "upper bound", "why not"], rows)


def _search_holdout_text(holdout: dict[str, Any] | None) -> str:
    if not holdout:
        return ""
    return (f'<p class="meta">Accuracy search sample <code>{html.escape(str(holdout["uri"]))}</code>: '
            f'{holdout["num_examples"]} examples of split <code>{html.escape(str(holdout["split"]))}</code>; '
            f'{holdout["excluded_examples"]} examples of the evaluated split were left out of the gate (the search '
            'chose its candidate on them).</p>')


def _output_kind_text(models: dict[str, Any]) -> str:
    """Says when the scores are not the models' raw outputs (absent from metrics.json before output_kind)."""
    if models.get("float", {}).get("output_kind") != "logits":
        return ""
    return (" Outputs are logits (<code>output_kind='logits'</code>): sigmoid (one column) or softmax (several) was "
            "applied to both models' outputs before every metric.")


def render_html(metrics: dict[str, Any]) -> str:
    """The report page for a ``metrics.json`` dict; it names the verdict in its title and first heading."""
    metric, verdict, thresholds = metrics["metric"], metrics["verdict"], metrics["thresholds"]
    cands = candidates(metrics)
    word = "BLESSED" if verdict["blessed"] else "NOT BLESSED"
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in verdict["reasons"])
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in verdict.get("warnings") or [])
    bound = thresholds.get("delta_bound", "point")
    confidence = thresholds.get("confidence", 0.95)
    gated = " and ".join(f"<b>{html.escape(m)}</b> ≤ {d:g}" for m, d in _gated(metrics))
    compared = (f"its {confidence:.0%} upper confidence bound" if bound == "upper"
                else f"the point degradation (its {confidence:.0%} upper bound is reported beside it)")
    run = metrics.get("run") or {}
    host = metrics.get("latency_host") or {}
    selected = [c for c in cands if c.get("selected")]
    chosen = selected[0] if selected else cands[0]
    models = metrics["models"]
    selection = (f"<p>{len(cands)} candidates; selection <code>{html.escape(str(metrics.get('selection')))}</code>"
                 f" chose <b>{html.escape(chosen['name'])}</b>" + ("" if verdict["blessed"] else " (none passes)")
                 + ".</p>" + _candidate_table(metrics, cands)) if len(cands) > 1 else ""
    classifier = "".join(_classifier_section(c) for c in cands) if metrics["task"] == "classification" else ""
    threads = host.get("tflite_threads")
    host_text = (f"Latency ({html.escape(str(thresholds.get('latency_measure', 'end_to_end')))}: kernel is the "
                 "model call alone on inputs already set, end to end adds input quantization and copies; both are in "
                 f"metrics.json) {html.escape(str(host.get('note', 'measured on the evaluating host')))}: "
                 f"{html.escape(str(host.get('cpu', 'unknown CPU')))}, {host.get('usable_cpus', '?')} of "
                 f"{host.get('logical_cpus', '?')} logical CPUs usable, TFLite threads: "
                 f"{threads if threads is not None else 'interpreter default'}; batch 1, "
                 f"{metrics['latency_ms']['float'].get('calls', '?')} timed calls per model after warm-up.")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>QuantizationEvaluator: {word}</title>
<style>body{{font-family:sans-serif;margin:1.5em 2em;max-width:78em;font-size:15px}}
table{{border-collapse:collapse;margin:.8em 0}} td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}
th{{background:#eee}} table.left td{{text-align:left}} code{{background:#f4f4f4}}
.verdict{{padding:.5em 1em;color:white;background:{_OK_COLOR if verdict['blessed'] else _FAIL_COLOR}}}
.warn li{{color:#8a5a00}} .good{{color:#2e7d32;font-weight:bold}} .meta{{color:#555}}
img.chart{{margin:.5em 1em .5em 0;vertical-align:top}}
table.matrix{{display:inline-table;margin:.5em 1.5em .5em 0;vertical-align:top}} caption{{font-weight:bold}}</style></head><body>
<h1 class="verdict">{word}</h1>
<p><b>{html.escape(verdict['reason'])}</b></p>{f'<ul>{reasons}</ul>' if reasons else ''}
<p>Rule: {gated} ({html.escape(thresholds['delta_type'])} degradation of <b>{html.escape(chosen['name'])}</b>
against the float model, positive = the quantized model is worse), judged on {compared}, on at least
{thresholds.get('min_examples', 1)} examples. Point delta {_fmt(verdict['delta'])}, upper bound
{_fmt(verdict.get('delta_upper'))}, threshold {_fmt(verdict['threshold'])}.</p>
{f'<p>Warnings:</p><ul class="warn">{warnings}</ul>' if warnings else ''}
{_search_holdout_text(metrics.get('search_holdout'))}
<p class="meta">Pipeline <code>{_fmt(run.get('pipeline_name'))}</code>, run <code>{_fmt(run.get('run_id'))}</code>;
split <code>{html.escape(metrics['split'])}</code> ({metrics['overall']['num_examples']} scored examples), label
<code>{html.escape(metrics['label_key'])}</code>; float model <code>{_fmt(models['float'].get('uri'))}</code>;
quantized model sha256 <code>{_fmt(chosen.get('evaluated_sha256'))}</code>.{_output_kind_text(models)}</p>
{selection}
<h2>Size, latency, {html.escape(metric)}</h2>
{_size_chart(metrics, cands)}{_latency_chart(metrics, cands)}{_delta_chart(metrics, cands)}
{_latency_comparison_text(chosen)}
<p class="meta">{host_text}</p>
<h2>{html.escape(metric)} per slice ({html.escape(chosen['name'])})</h2>
{_slice_section(metrics, chosen)}
{f'<h2>Confusion and disagreement</h2>{classifier}' if classifier else ''}
<h2>Quantization settings</h2>
{''.join(_quantization_section(c) for c in cands)}
<h2>Thresholds</h2>
{_table(list(thresholds), [[str(v) if isinstance(v, list) else v for v in thresholds.values()]])}
</body></html>
"""
