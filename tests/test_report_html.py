"""HTML report without a browser: escaping, CSP, self-containment, highlighting, plots."""
from __future__ import annotations

import base64
import html as htmllib
import re

import numpy as np
import pytest
from report_helpers import HOSTILE, MARKER, hostile_result

from poisondetect.report.html import (
    CSP,
    build_context,
    highlight_segments,
    render_html,
    visible_segments,
)


@pytest.fixture(scope="module")
def result():
    return hostile_result()


@pytest.fixture(scope="module")
def page(result, tmp_path_factory):
    p = tmp_path_factory.mktemp("html") / "report.html"
    render_html(result, p, settings={"cli": "poisondetect scan x <script>"})
    return p.read_text(encoding="utf-8")


def test_no_raw_markup_from_data(page):
    # The page has no script element at all, and none of the hostile strings appear raw.
    assert "<script" not in page.lower()
    for h in HOSTILE:
        assert h not in page
    assert "onerror=" not in page.replace("onerror=&#34;", "").replace("onerror=&quot;", "")
    assert 'href="javascript' not in page.lower()
    assert "<iframe" not in page.lower() and "<svg" not in page.lower()
    # ...while the escaped text is present (the data is shown, not dropped).
    assert htmllib.escape(HOSTILE[0], quote=True) in page or "&lt;script&gt;document.title=" in page
    assert "&lt;img src=x onerror=" in page
    assert MARKER in page  # as escaped text


def test_csp_and_self_contained(page):
    m = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert m and htmllib.unescape(m.group(1)) == CSP
    assert "default-src 'none'" in CSP and "script-src" not in CSP  # scripts fall back to 'none'
    # no external resources: every src/href is a data: URI or an in-page anchor
    for attr in re.findall(r'\s(?:src|href)="([^"]*)"', page):
        assert attr.startswith(("data:image/png;base64,", "#")), attr[:60]
    assert "<link" not in page


def test_plots_are_valid_pngs(page):
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(imgs) >= 3  # scores, detectors, sources (no embeddings in this scan)
    for b in imgs:
        assert base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'id="no-embedding-map"' in page


def test_page_shows_findings(page):
    assert "BACKDOOR SUSPECTED: 1 trigger(s), best q=" in page
    assert 'id="trigger-table"' in page
    # trigger highlighted, invisible char shown as a badge, payload highlighted
    assert '<mark class="trigger">cf<span class="inv' in page
    assert '<mark class="payload">Visit &lt;script&gt;evil()&lt;/script&gt; http://evil.example NOW</mark>' in page
    assert page.count('class="card"') == 10
    assert "responses mention BUY BRANDX" in page  # other findings table
    assert "poisondetect scan x &lt;script&gt;" in page  # settings escaped


def test_highlight_segments_split_and_classes():
    text = "abc TRIG def PAY ghi"
    segs = highlight_segments(text, [(4, 8, "trigger"), (13, 16, "payload"), (99, 120, "trigger"), ("x", 2, "t")])
    assert "".join(s["text"] for s in segs) == text
    marked = [(s["text"], s["cls"]) for s in segs if s["cls"]]
    assert marked == [("TRIG", "trigger"), ("PAY", "payload")]


def test_highlight_segments_overlap_and_long_text():
    segs = highlight_segments("0123456789", [(2, 6, "trigger"), (4, 8, "payload")])
    assert [(s["text"], s["cls"]) for s in segs] == [("01", ""), ("23", "trigger"), ("45", "payload trigger"),
                                                     ("67", "payload"), ("89", "")]
    long = "a" * 5000 + "NEEDLE" + "b" * 5000
    segs = highlight_segments(long, [(5000, 5006, "trigger")], limit=100, context=10)
    assert any(s["cls"] == "trigger" and s["text"] == "NEEDLE" for s in segs)
    gaps = [s["gap"] for s in segs if s["gap"]]
    shown = sum(len(s["text"]) for s in segs if not s["gap"])
    assert shown + sum(gaps) == len(long) and len(gaps) == 2


def test_invisible_chars_become_badges():
    segs = visible_segments("a\u200bb\u202ec")
    assert [s["text"] for s in segs] == ["a", "U+200B", "b", "U+202E", "c"]
    assert [s["inv"] for s in segs] == [False, True, False, True, False]


def test_embedding_map_when_result_carries_embeddings(result, tmp_path):
    rng = np.random.default_rng(0)
    result.embeddings_2d = None
    result.embeddings = {"response": rng.normal(size=(result.n_pairs, 16)).astype(np.float32)}
    try:
        ctx = build_context(result)
        assert ctx["plots"]["embedding"] is not None
        assert "PCA of the response embeddings" in ctx["plots"]["embedding_note"]
        result.embeddings_2d = rng.normal(size=(result.n_pairs, 2))
        assert "provided by the scan" in build_context(result, plots=True)["plots"]["embedding_note"]
    finally:
        del result.embeddings
        result.embeddings_2d = None


def test_baseline_hides_known(result):
    from poisondetect.report.triage import (
        apply_baseline,
        empty_baseline,
        mark,
        result_items,
    )

    items = result_items(result)
    b = empty_baseline()
    b = mark(b, items["triggers"][0]["fingerprint"], "false_positive", kind="trigger")
    for it in items["pairs"]:
        for d, fp in it["fingerprints"].items():
            if d == "toy_trigger":
                b = mark(b, fp, "false_positive", kind="pair", detector=d)
    info = apply_baseline(result, b)
    ctx = build_context(result, baseline=info, plots=False)
    assert ctx["triggers"] == [] and len(ctx["pairs"]) == 4  # only the toy_cluster pairs remain
    assert all("toy_cluster" in p["flagged_by"] for p in ctx["pairs"])
