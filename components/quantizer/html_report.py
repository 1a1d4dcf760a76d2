"""``quantization_report.html``: the report json as one self-contained page (inline base64 PNG, no scripts, no links).

Shows what to act on first: the warnings (coarse inputs, inputs sharing one scale), the worst layers by
``rmse_over_scale`` as a bar plot and a table (the tensor names are what ``denylisted_nodes`` / ``int16_nodes``
take), the input steps, op counts and sizes.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure  # the object API needs no pyplot backend

from quantgate.components.quantizer.readiness import readiness_html
from quantgate.components.shared.html_page import png, table

# How many layers the plot and the table show (the json keeps more, see diagnostics.MAX_REPORTED).
TOP_LAYERS = 20
# Rounding alone: a uniform error of half a step either way has an RMS of 1/sqrt(12) steps.
ROUNDING_RMSE_OVER_SCALE = 12 ** -0.5
MAX_LABEL_CHARS = 48
_BAR, _HIGH = "#4c72b0", "#c44e52"


def _label(name: str) -> str:
    # Fused tensor names ("model/dense/MatMul;model/dense/BiasAdd;...") run long: keep both ends.
    if len(name) <= MAX_LABEL_CHARS:
        return name
    half = (MAX_LABEL_CHARS - 1) // 2
    return f"{name[:half]}…{name[-half:]}"


def layer_plot(records: Sequence[dict[str, Any]]) -> str:
    """A horizontal bar plot of ``rmse_over_scale`` per tensor, worst on top, as an inline ``<img>``."""
    shown = [r for r in records if r["rmse_over_scale"] is not None]
    fig = Figure(figsize=(8.0, 0.8 + 0.32 * max(1, len(shown))))
    ax = fig.subplots()
    values = [r["rmse_over_scale"] for r in shown]
    colors = [_HIGH if v > 1.0 else _BAR for v in values]
    ax.barh(range(len(shown)), values, color=colors)
    ax.set_yticks(range(len(shown)), [f"{_label(r['tensor'])} ({r['op']})" for r in shown], fontsize=8,
                  parse_math=False)  # tensor names are data: no mathtext
    ax.invert_yaxis()
    ax.axvline(ROUNDING_RMSE_OVER_SCALE, color="black", linestyle="dashed", linewidth=0.8,
               label="rounding only (0.29)")
    ax.set_xlabel("RMSE / scale (quantization steps of the tensor)")
    ax.set_title("layer-wise error, worst first (red: over one step)")
    ax.legend(loc="lower right", fontsize=8)
    return png(fig, alt="layer errors")


def _layer_section(layer_errors: dict[str, Any] | None) -> str:
    if layer_errors is None:
        return "<p>No layer-wise diagnostics: the mode quantizes no activations.</p>"
    if layer_errors.get("error"):
        return f"<p>Layer-wise diagnostics failed: {html.escape(layer_errors['error'])}</p>"
    top = layer_errors["tensors"][:TOP_LAYERS]
    if not top:
        return "<p>No quantized op output to compare.</p>"
    rows = [(i + 1, r["tensor"], r["op"], r["dtype"], r["rmse_over_scale"], r["mean_error"], r["max_abs_error"],
             r["scale"], r["zero_point"]) for i, r in enumerate(top)]
    return (f"<p>{html.escape(layer_errors['method'])}; {layer_errors['num_tensors']} quantized tensors compared on "
            f"{layer_errors['num_examples']} representative examples, the worst {len(top)} shown. Keep a tensor's op "
            "in float with <code>denylisted_nodes</code>, or give it int16 activations with <code>int16_nodes</code> "
            "(engine litert_quantizer).</p>"
            + layer_plot(top)
            + table(["#", "tensor", "op", "dtype", "rmse/scale", "mean error", "max |error|", "scale", "zero point"],
                    rows))


def render_html(quantization_report: dict[str, Any]) -> str:
    """The page for a ``quantization_report.json`` dict."""
    r = quantization_report
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in r["warnings"])
    steps = [(name, s["step"], s["std"], s["step_over_std"], s["distinct_levels"], s.get("columns", 1),
              s.get("coarse_columns", int(s["coarse"])), "yes" if s["coarse"] else "no")
             for name, s in r["input_steps"].items()]
    sizes = r["sizes"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Quantizer: {html.escape(r['mode'])} ({html.escape(r['engine'])})</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:80em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}} td:nth-child(2){{text-align:left}}
th{{background:#eee}} .warn{{color:{_HIGH}}}</style></head><body>
<h1>Quantizer: {html.escape(r['mode'])} ({html.escape(r['engine'])})</h1>
<p>Signature <code>{html.escape(r['signature_name'])}</code>, I/O <code>{html.escape(r['io_dtype'])}</code>,
{sizes['tflite_bytes']} bytes (float32 TFLite {sizes.get('float_tflite_bytes')} bytes: the same function
unquantized{_ratio(sizes)}, float variables {sizes['float_variables_bytes']} bytes), ops by dtype
{html.escape(str(r['ops']['by_dtype']))}.</p>
<h2>Warnings</h2>
{f'<ul class="warn">{warnings}</ul>' if warnings else '<p>None.</p>'}
<h2>Edge TPU / integer-only readiness</h2>
{readiness_html(r.get('edge_tpu_readiness'))}
<h2>Layer-wise error</h2>
{_layer_section(r.get('layer_errors'))}
<h2>Input steps</h2>
{table(["input", "step", "std", "worst step/std", "fewest levels", "columns", "coarse columns", "coarse"], steps)
 if steps else '<p>No quantized input with calibration values.</p>'}
</body></html>
"""


def _ratio(sizes: dict) -> str:
    """``, 3.83x smaller`` (float32 TFLite bytes over the model's), ``, 1.02x larger``, or empty when not known."""
    ratio = sizes.get("ratio_to_float_tflite")
    if not ratio:
        return ""
    return f", {1 / ratio:.2f}x smaller" if ratio < 1 else f", {ratio:.2f}x larger"
