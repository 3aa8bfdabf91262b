"""report.html in a real browser: headless Chromium (Debian's package; .ci/run installs it) renders the synthetic
study at 800 px, takes a screenshot, and the page must not scroll sideways. Skipped where no Chromium is
installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from matplotlib.image import imread

from reports.load import load_run
from reports.report import write_report

RUNS = Path(__file__).parent / "fixtures" / "recorded"
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium (apt-get install chromium)")
# What the page measures of itself once laid out; the report ships without a script, so a copy gets this one.
PROBE = ("<script>document.title = 'scroll ' + document.documentElement.scrollWidth + ' client ' + "
         "document.documentElement.clientWidth;</script></body>")


def _chromium(*args: str) -> str:
    # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
    done = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--window-size=800,1400", *args], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    run_dir = Path(shutil.copytree(RUNS / "synthetic-study", tmp_path_factory.mktemp("browser") / "run"))
    return write_report(load_run(run_dir)).html


def test_report_html_does_not_scroll_sideways_at_800_px(page):
    text = page.read_text()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    assert text.count('<div class="scroll"><table>') == text.count("<table>") > 5
    probe = page.with_name("probe.html")
    probe.write_text(text.replace("</body>", PROBE, 1))
    found = re.search(r"<title>scroll (\d+) client (\d+)</title>", _chromium("--dump-dom", probe.as_uri()))
    assert found, "the probe did not run"
    scroll, client = map(int, found.groups())
    assert client == 800 and scroll <= client, f"the page is {scroll} px wide in an 800 px window"


def test_report_html_screenshot_at_800_px(page):
    shot = page.with_name("report-800.png")
    _chromium(f"--screenshot={shot}", page.as_uri())
    height, width, _ = imread(shot).shape
    assert (width, height) == (800, 1400)
    pixels = imread(shot)[:, :, :3]
    assert (pixels.std(axis=(0, 1)) > 0.05).all()  # a rendered page, not a blank one
