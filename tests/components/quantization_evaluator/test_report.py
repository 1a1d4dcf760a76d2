"""report.html from a metrics.json dict: self-contained, names the verdict, shows every slice."""

from __future__ import annotations

import re

import pytest

from components.quantization_evaluator.report import render_html


def _metrics(blessed: bool) -> dict:
    def entry(float_acc: float, quant_acc: float | None, n: int) -> dict:
        return {"num_examples": n, "float": {"accuracy": float_acc}, "quantized": {"accuracy": quant_acc},
                "delta": None if quant_acc is None else float_acc - quant_acc, "agreement": 0.97}

    return {
        "metric": "accuracy", "task": "classification", "split": "eval", "label_key": "species",
        "overall": entry(0.99, 0.98 if blessed else 0.5, 100),
        "slices": [{"feature": "island", "value": "Biscoe", **entry(1.0, 0.99, 50)},
                   {"feature": "island", "value": "<Dream>", **entry(0.97, None, 40)}],
        "skipped_slices": [{"feature": "island", "value": "Torgersen", "num_examples": 10}],
        "models": {"float": {"uri": "/m/float"}, "quantized": {"uri": "/m/quant"}},
        "sizes": {"float_bytes": None, "quantized_bytes": 6312},
        "latency_ms": {"float": {"p50_ms": 1.2, "p95_ms": 3.0, "calls": 300},
                       "quantized": {"p50_ms": 0.2, "p95_ms": 0.3, "calls": 300}},
        "thresholds": {"metric": "accuracy", "max_delta": 0.01, "delta_type": "absolute", "min_slice_size": 30,
                       "max_slice_delta": 0.05, "min_agreement": None, "max_model_bytes": None,
                       "max_latency_ms": None},
        "verdict": {"blessed": blessed, "delta": 0.01 if blessed else 0.49, "threshold": 0.01,
                    "reason": "blessed: every threshold passed" if blessed else "not blessed: delta 0.49 > 0.01",
                    "reasons": [] if blessed else ["delta 0.49 > 0.01"]},
    }


@pytest.mark.parametrize(("blessed", "word"), [(True, "BLESSED"), (False, "NOT BLESSED")])
def test_report_names_the_verdict(blessed: bool, word: str) -> None:
    page = render_html(_metrics(blessed))
    assert f"<title>QuantizationEvaluator: {word}</title>" in page
    assert f'<h1 class="verdict">{word}</h1>' in page
    assert ("delta 0.49 &gt; 0.01" in page) is not blessed


def test_report_is_self_contained_with_four_plots() -> None:
    page = render_html(_metrics(True))
    images = re.findall(r'<img alt="plot" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    assert len(images) == 4 and all(len(i) > 1000 for i in images)
    # Nothing to fetch: no scripts, stylesheets, or http(s) sources.
    assert not re.search(r"<script|<link|src=\"http|href=", page)


def test_report_lists_slices_escaped_and_skipped() -> None:
    page = render_html(_metrics(True))
    assert "island=Biscoe" in page and "island=&lt;Dream&gt;" in page and "<Dream>" not in page
    assert "Torgersen: 10 examples" in page
    assert "n/a" in page  # the missing quantized value and the unknown float size


def test_slice_values_are_drawn_as_literal_text() -> None:
    """A slice value is data: `$...$` in it is no mathtext (an unknown macro used to crash after Beam had run)."""
    metrics = _metrics(False)
    metrics["slices"][1]["value"] = r"$\undefinedmacro{x}$"
    metrics["slices"].append({**metrics["slices"][0], "value": "cost $5 or $6"})
    page = render_html(metrics)
    assert r"island=$\undefinedmacro{x}$" in page and "island=cost $5 or $6" in page
