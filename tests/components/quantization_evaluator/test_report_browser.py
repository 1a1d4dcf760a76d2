"""report.html opened in a real headless Chromium: every chart image decodes, the verdict is on the page, and a
1280 px screenshot is taken. Debian's ``chromium`` is installed with apt-get when missing (as the MariaDB tests
install their server); without apt the tests skip, saying so."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable

import numpy as np
import pytest
from matplotlib import image as mpimg

from quantgate.components.quantization_evaluator.report import render_html

log = logging.getLogger(__name__)
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
          "--disable-dev-shm-usage", "--virtual-time-budget=10000"]
# Appended to a copy of the page (the report itself has no scripts): once everything loaded, write what the
# browser decoded into the DOM, for --dump-dom to return.
_PROBE = """<pre id="render-check"></pre><script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth,
                                                 height: i.naturalHeight}));
  document.getElementById("render-check").textContent = JSON.stringify(
    {images, verdict: document.querySelector("h1.verdict")?.textContent ?? null, title: document.title});
});
</script>"""


def _chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    found = _chromium_path()
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("the browser test needs chromium or apt-get to install Debian's chromium; neither is available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    started = time.monotonic()
    log.info("chromium not found: installing it with apt-get")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    log.info("installed chromium in %.0f s", time.monotonic() - started)
    found = _chromium_path()
    if found is None:
        raise RuntimeError("apt-get installed chromium but no chromium is on the PATH")
    return found


def _run(chromium: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium, *_FLAGS, *args], capture_output=True, text=True, timeout=120, check=True)


def render_in_browser(chromium: str, page: str, workdir: str) -> tuple[dict, np.ndarray]:
    """(what the probe saw once the page loaded, the 1280 px screenshot as an RGB(A) array)."""
    report = os.path.join(workdir, "report.html")
    probed = os.path.join(workdir, "probed.html")
    with open(report, "w") as f:
        f.write(page)
    with open(probed, "w") as f:
        f.write(page.replace("</body>", _PROBE + "</body>"))
    dom = _run(chromium, "--dump-dom", f"file://{probed}").stdout
    found = re.search(r'<pre id="render-check">(.*?)</pre>', dom, re.S)
    assert found and found.group(1), "the probe did not run: the page did not finish loading"
    screenshot = os.path.join(workdir, "report.png")
    _run(chromium, f"--screenshot={screenshot}", "--window-size=1280,2600", f"file://{report}")
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")), mpimg.imread(screenshot)


@pytest.fixture(scope="module")
def rendered(chromium, tmp_path_factory) -> Callable[[dict], tuple[dict, np.ndarray]]:
    def render(metrics: dict) -> tuple[dict, np.ndarray]:
        return render_in_browser(chromium, render_html(metrics), str(tmp_path_factory.mktemp("browser")))

    return render


def test_the_report_renders_in_chromium(rendered, report_metrics) -> None:
    seen, screenshot = rendered(report_metrics(blessed=False))
    assert seen["verdict"] == "NOT BLESSED" and seen["title"] == "QuantizationEvaluator: NOT BLESSED"
    images = seen["images"]
    assert len(images) >= 4
    for image in images:  # a broken data: URI loads as complete with naturalWidth 0
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
    assert screenshot.shape[1] == 1280 and screenshot.shape[0] > 1000
    # Not a blank page: the red verdict banner and the charts are there.
    assert len(np.unique(screenshot.reshape(-1, screenshot.shape[2])[::97], axis=0)) > 50
