"""report.html from a metrics.json dict: self-contained, names the verdict, shows every slice."""

from __future__ import annotations

import re

import pytest

from quantgate.components.quantization_evaluator.report import render_html


@pytest.mark.parametrize(("blessed", "word"), [(True, "BLESSED"), (False, "NOT BLESSED")])
def test_report_names_the_verdict(report_metrics, blessed: bool, word: str) -> None:
    page = render_html(report_metrics(blessed))
    assert f"<title>QuantizationEvaluator: {word}</title>" in page
    assert f'<h1 class="verdict">{word}</h1>' in page
    assert ("delta 0.49 &gt; 0.01" in page) is not blessed


def test_report_is_self_contained_with_its_charts(report_metrics) -> None:
    page = render_html(report_metrics(True))
    images = re.findall(r'<img class="chart" alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    assert [alt for alt, _ in images] == ["model size", "batch-1 latency", "degradation against the threshold",
                                          "degraded slices"]
    assert all(len(data) > 1000 for _, data in images)
    # The confusion and disagreement matrices are shaded tables of the exact counts.
    matrices = re.findall(r'<table class="matrix"><caption>([^<]+)</caption>(.*?)</table>', page)
    assert [caption for caption, _ in matrices] == ["float: label x predicted", "int8: label x predicted",
                                                    "float x int8 predictions"]
    for _, body in matrices:
        assert len(re.findall(r'<td style="background:rgb\(\d+, \d+, \d+\);color:(?:white|black)">\d+</td>',
                              body)) >= 4
    # Nothing to fetch: no scripts, stylesheets, or http(s) sources.
    assert not re.search(r"<script|<link|src=\"http|href=", page)


def test_report_lists_slices_escaped_and_skipped(report_metrics) -> None:
    page = render_html(report_metrics(True))
    assert "island=Biscoe" in page and "island=&lt;Dream&gt;" in page and "<Dream>" not in page
    assert "Torgersen: 10 examples" in page
    assert "n/a" in page  # the missing quantized value and the unknown float size


def test_slice_values_are_drawn_as_literal_text(report_metrics) -> None:
    """A slice value is data: `$...$` in it is no mathtext (an unknown macro used to crash after Beam had run)."""
    metrics = report_metrics(False)
    metrics["slices"][1]["value"] = r"$\undefinedmacro{x}$"
    metrics["slices"].append({**metrics["slices"][0], "value": "cost $5 or $6"})
    page = render_html(metrics)
    assert r"island=$\undefinedmacro{x}$" in page and "island=cost $5 or $6" in page


def test_report_shows_settings_run_host_and_warnings(report_metrics) -> None:
    page = render_html(report_metrics(True))
    for text in ("tflite_converter", "calibration examples", "FULLY_CONNECTED", "latitude",
                 "input latitude is coarse", "penguin", "2026-12-01T20:00:00", "ab12", "Test CPU @ 2 GHz",
                 "measured on the evaluating host, not the target device", "one flipped prediction",
                 "Per-class recall", "predicted differently by the two models"):
        assert text in page, text


def test_no_empty_degradation_chart(report_metrics) -> None:
    metrics = report_metrics(True)
    for entry in metrics["slices"]:
        entry["deltas"]["accuracy"]["delta"] = 0.0
    page = render_html(metrics)
    assert "No degradation on any slice." in page and 'alt="degraded slices"' not in page
