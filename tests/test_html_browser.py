"""The HTML report in headless Chromium: hostile dataset text renders as text and runs
nothing; the page shows its findings; a screenshot comes out.

Needs Debian's chromium (`apt-get install -y chromium`); skipped when absent.
"""
from __future__ import annotations

import html as htmllib
import os
import shutil
import subprocess

import pytest
from report_helpers import MARKER, hostile_result

from poisondetect.report.html import render_html

pytestmark = pytest.mark.browser

CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    prof = tmp_path / "profile"
    prof.mkdir(exist_ok=True)
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={prof}", *args], capture_output=True,
                          timeout=90, text=False, check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser")
    p = d / "report.html"
    render_html(hostile_result(), p, top=20)
    return p


@needs_chromium
def test_hostile_text_runs_nothing(report, tmp_path):
    proc = _chromium(tmp_path, "--virtual-time-budget=3000", "--dump-dom", report.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout.decode("utf-8")
    assert "</html>" in dom
    # No payload ran: the title is ours and nothing wrote the marker into the DOM as markup.
    title = dom.split("<title>", 1)[1].split("</title>", 1)[0]
    assert title == "poisondetect report"
    assert f"data-x=\"{MARKER}\"" not in dom
    assert "<script" not in dom.lower() and "<iframe" not in dom.lower() and "<svg" not in dom.lower()
    # The hostile text is shown, escaped, as text.
    assert htmllib.escape("<img src=x onerror=", quote=False) in dom
    assert MARKER in dom
    # The page shows its findings.
    assert 'id="trigger-table"' in dom and "BACKDOOR SUSPECTED" in dom
    assert dom.count('class="card"') == 10


@needs_chromium
def test_screenshot(report, tmp_path):
    shot = tmp_path / "report.png"
    proc = _chromium(tmp_path, "--window-size=1100,1600", f"--screenshot={shot}", report.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real rendered page, not blank
    import matplotlib.image as mpimg

    img = mpimg.imread(str(shot))
    assert img.shape[0] == 1600 and img.shape[1] == 1100
    assert float(img[..., :3].std()) > 0.05  # not a uniform (empty) page
