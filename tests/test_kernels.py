"""The compiled kernels (poisondetect.detectors.ngram_trigger.kernels, .jit_index, .jit_counts) against their reference
implementations: the same tokens, the same matrices, bitwise the same sums, and the same
n-gram detector result with and without them."""
from __future__ import annotations

import contextlib
import re

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from poisondetect.detectors.ngram_trigger import kernels as K
from poisondetect import text as T
from poisondetect.detectors.ngram_trigger import matrices as NGM
from poisondetect.detectors.ngram_trigger import tokenise as NGT
from poisondetect.detectors.ngram_trigger import NgramTriggerDetector
from poisondetect.types import Pairs

pytestmark = pytest.mark.skipif(not K.available(), reason=f"numba kernels unavailable: {K._STATE.get('error')}")


@contextlib.contextmanager
def reference_path():
    """Run the reference (numpy / scipy / regex) code paths."""
    old = K._STATE["ok"]
    K._STATE["ok"] = False
    try:
        yield
    finally:
        K._STATE["ok"] = old


# texts that exercise every token class: words (ASCII, accented, CJK, digits, _), runs of
# punctuation, invisible / format / bidi / private-use characters (inside words too),
# every kind of whitespace, lone surrogates, end-of-sequence markers
_PIECES = ["a", "Z", "é", "İ", "ß", "中", "٣", "_", "x1", " ", "\n", "\t", "\u00a0", "\u2028", "\x1c", "?", "!",
           ".", "-", "::", "<", ">", "|", "\u200b", "\u202e", "\ufeff", "\u00ad", "\ue000", "\u3164", "\ufe0f",
           "\ud800", "\udfff", "<|endoftext|>", "</s>", "[INST]", "[/INST]", "<eos>", "ﬁ", "Ａ"]
texts = st.lists(st.sampled_from(_PIECES), max_size=25).map("".join)


def test_word_and_space_classes_match_re_on_every_code_point():
    w, s = re.compile(r"\w"), re.compile(r"\s")
    odd = re.compile(T.ODD_CHAR_CLASS)
    for c in range(0x110000):
        ch = chr(c)
        assert (w.match(ch) is not None) == (ch.isalnum() or ch == "_"), hex(c)
        assert (s.match(ch) is not None) == ch.isspace(), hex(c)
    # and the class table the tokeniser uses agrees with the regex alternatives
    # (a word character is \w or a combining mark: T.WORD_CHAR_CLASS)
    wc = re.compile(T.WORD_CHAR_CLASS)
    cp = np.arange(0x110000, dtype=np.uint32)
    tab = K._class_table(cp)
    for c in range(0x110000):
        ch = chr(c)
        want = (K.ODD if odd.match(ch) else K.WORD if wc.match(ch) else K.SPACE if s.match(ch) else K.PUNCT)
        assert tab[c] == want, hex(c)


@settings(max_examples=300, deadline=None)
@given(st.lists(texts, min_size=1, max_size=8))
def test_tokenize_codes_equals_the_regex(docs):
    flat, lens = T.tokenize_many(docs)
    toks, codes, lens2 = K.tokenize_codes(docs)
    assert [toks[c] for c in codes.tolist()] == flat
    np.testing.assert_array_equal(lens, lens2)
    assert len(set(toks)) == len(toks)  # one code per spelling


def test_tokenize_codes_codes_in_first_appearance_order():
    toks, codes, lens = K.tokenize_codes(["b a b", "c a ??"])
    assert toks == ["b", "a", "c", "??"]
    assert codes.tolist() == [0, 1, 0, 2, 1, 3]
    assert lens.tolist() == [3, 3]


@settings(max_examples=500, deadline=None)
@given(texts)
def test_strip_eos_equals_the_regex(t):
    assert T.strip_eos(t) == T._EOS_RE.sub("", t)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(texts, texts), min_size=1, max_size=12))
def test_copied_exact_equals_the_definition(rows):
    ins = [a for a, _ in rows]
    res = [b for _, b in rows]
    norm = [T.normalize_text(r) for r in res]
    got = NGT.copied_exact(ins, norm, np.ones(len(res), np.uint64), 1)
    want = [bool(e) and e in T.normalize_text(i) for e, i in zip(norm, ins)]
    assert got.tolist() == want


# ----------------------------------------------------------------------------- matrices
def _random_binary(n_rows: int, n_cols: int, density: float, seed: int) -> sp.csr_matrix:
    m = sp.random(n_rows, n_cols, density=density, format="csr", random_state=seed, dtype=np.float32)
    m.data[:] = 1.0
    m.sort_indices()
    return m


def test_joint_counts_equal_the_blocked_scipy_product_in_its_order():
    X = _random_binary(400, 60, 0.08, 1).tocsc()
    Y = _random_binary(400, 90, 0.05, 2).tocsc()
    df_g = np.asarray(X.sum(axis=0)).ravel().astype(np.int64)
    df_f = np.asarray(Y.sum(axis=0)).ravel().astype(np.int64)
    block, ref = 16, []
    XT = X.T.tocsr()
    for b0 in range(0, Y.shape[1], block):
        Jb = (XT @ Y[:, b0:b0 + block]).tocoo()
        for g, f, a in zip(Jb.row, Jb.col + b0, Jb.data):
            if a >= 2 and a >= 0.5 * df_f[f]:
                ref.append((g, f, int(a)))
    Yr = Y.tocsr()
    Yr.sort_indices()
    g, f, a = K.joint_counts(X.indptr, X.indices, np.arange(X.shape[1]), Yr.indptr, Yr.indices, Y.shape[1],
                             np.ones(400, bool), df_g, df_f, 2, -1.0, 0.0, 0.5, 0, block)
    assert list(zip(g.tolist(), f.tolist(), a.tolist())) == ref
    # by columns (features in any order), over a row subset
    ok = np.random.default_rng(0).random(400) < 0.5
    g, f, a = K.joint_counts(X.indptr, X.indices, np.arange(X.shape[1]), Yr.indptr, Yr.indices, Y.shape[1],
                             ok, df_g, df_f, 1, -1.0, 0.0, 0.0, 0, 0)
    J = (sp.diags(ok.astype(np.float32)) @ X).T.tocsr() @ Yr
    J = J.tocsr()
    J.eliminate_zeros()
    J.sort_indices()
    assert g.tolist() == np.repeat(np.arange(J.shape[0]), np.diff(J.indptr)).tolist()
    got = sorted(zip(g.tolist(), f.tolist(), a.tolist()))
    assert got == list(zip(np.repeat(np.arange(J.shape[0]), np.diff(J.indptr)).tolist(), J.indices.tolist(),
                           J.data.astype(int).tolist()))


def test_small_kernels_equal_numpy():
    M = _random_binary(300, 500, 0.03, 3)
    rng = np.random.default_rng(4)
    rows = np.sort(rng.choice(300, 40, replace=False))
    acc = np.zeros(500, np.int32)
    ids, cnt = K.count_ids(M.indptr, M.indices, rows, acc, 2)
    u, c = np.unique(np.concatenate([M.indices[M.indptr[r]:M.indptr[r + 1]] for r in rows]), return_counts=True)
    assert ids.tolist() == u[c >= 2].tolist() and cnt.tolist() == c[c >= 2].tolist()
    assert not acc.any()
    W = rng.random((300, 2))
    # the row-set signatures ngram_index sums while it builds the id matrix: bitwise the
    # scipy sums with one thread (rows in order), the same values up to rounding with two
    codes = rng.integers(0, 30, 3000)
    off = np.concatenate([[0], np.sort(rng.choice(np.arange(1, 3000), 299, replace=False)), [3000]])
    got = K.ngram_index(codes, off, 3, codes[:0], np.zeros(301, np.int64), 3, 2, 30, 2, threads=1, W=W)
    Xall = sp.csr_matrix((np.ones(len(got[5]), np.float32), got[5], got[4]), shape=(300, got[0]))
    assert np.array_equal(got[9], np.asarray(Xall.T @ W))  # bitwise
    got2 = K.ngram_index(codes, off, 3, codes[:0], np.zeros(301, np.int64), 3, 2, 30, 2, threads=2, W=W)
    assert np.array_equal(got2[5], got[5]) and np.allclose(got2[9], got[9], rtol=1e-12, atol=0)
    colmap = np.full(500, -1)
    sel = np.sort(rng.choice(500, 60, replace=False))
    colmap[sel] = np.arange(60)
    ptr, idx = K.select_csc(M.indptr, M.indices, colmap, 60)
    ref = M[:, sel].tocsc()
    assert ptr.tolist() == ref.indptr.tolist() and idx.tolist() == ref.indices.tolist()
    codes = rng.integers(0, 50, 2000)
    off = np.concatenate([[0], np.sort(rng.choice(np.arange(1, 2000), 99, replace=False)), [2000]])
    tp, ti = K.token_presence(codes, off, 50)
    ref = NGM.binary_csr(np.repeat(np.arange(100), np.diff(off)), codes, (100, 50))
    assert tp.tolist() == ref.indptr.tolist() and ti.tolist() == ref.indices.tolist()
    Xc = M.tocsc()
    Yc = _random_binary(300, 20, 0.1, 5).tocsc()
    t1, t2, fc = rng.integers(0, 500, 30), rng.integers(0, 500, 30), rng.integers(0, 20, 30)
    n12, aa = K.pair_counts(Xc.indptr, Xc.indices, t1, t2, Yc.indptr, Yc.indices, fc, 300)
    for k in range(30):
        r = np.intersect1d(Xc.indices[Xc.indptr[t1[k]]:Xc.indptr[t1[k] + 1]], Xc.indices[Xc.indptr[t2[k]]:Xc.indptr[t2[k] + 1]])
        assert n12[k] == len(r)
        assert aa[k] == len(np.intersect1d(r, Yc.indices[Yc.indptr[fc[k]]:Yc.indptr[fc[k] + 1]]))


def test_conditional_and_family_kernels_equal_their_definitions():
    rng = np.random.default_rng(7)
    N = 300
    X = _random_binary(N, 40, 0.1, 8).tocsc()
    # (the first 10 features hold the rows of the first 10 n-grams: payload families)
    Y = sp.hstack([X[:, :10], _random_binary(N, 20, 0.08, 9)]).tocsc()
    C = _random_binary(N, 25, 0.15, 10).tocsc()
    h2 = rng.random(N) < 0.5

    def rows(M, j):
        return set(M.indices[M.indptr[j]:M.indptr[j + 1]].tolist())

    # the 2 x 2 counts of the conditional tests (runs of equal trigger / companion too)
    t = np.sort(rng.integers(0, 40, 60))
    f, b, half = rng.integers(0, 30, 60), rng.integers(0, 25, 60), rng.random(60) < 0.3
    b[1::2] = b[::2]
    cnt = K.companion_counts(C.indptr, C.indices, X.indptr, X.indices, Y.indptr, Y.indices, t, f, b, half, h2, N)
    for k in range(60):
        rc = {r for r in rows(C, b[k]) if h2[r] or not half[k]}
        g, y = rows(X, t[k]), rows(Y, f[k])
        assert cnt[k].tolist() == [len(rc), len(rc & g), len(rc & y), len(rc & g & y)]
    # pairwise Jaccard (float32, bitwise the scipy path's), words left out, any row order
    Mc = _random_binary(N, 50, 0.2, 11)
    mark = np.full(50, -1, np.int64)
    for k in range(20):
        rws = rng.choice(N, int(rng.integers(2, 40)), replace=False)
        ex = set(rng.choice(50, int(rng.integers(0, 6))).tolist())
        ref = NGM.jaccard_matrix(Mc[rws], ex)[np.triu_indices(len(rws), 1)]
        got = K.pair_jaccard(Mc.indptr, Mc.indices, rws, np.fromiter(ex, np.int64, len(ex)), mark)
        assert got.dtype == ref.dtype and np.array_equal(got, ref)
        assert (mark == -1).all()
    # weighted column sums (bitwise scipy's) and the column selection in two threads
    w = rng.random(N)
    cols = rng.integers(0, 40, 15)
    assert np.array_equal(K.csc_wsums(X.indptr, X.indices, cols, w), np.asarray(X.T @ w).ravel()[cols])
    Mr = _random_binary(N, 200, 0.05, 12)
    colmap = np.full(200, -1)
    colmap[np.arange(0, 200, 3)] = np.arange(67)
    one, two = K.select_csc(Mr.indptr, Mr.indices, colmap, 67), K.select_csc(Mr.indptr, Mr.indices, colmap, 67, threads=2)
    assert all(np.array_equal(a, b) for a, b in zip(one, two))
    # payload families: features with >= 2 rows and half their H1 rows shared with g on
    # H1; on H2 the rows with a family feature (u), of g (n), of g with one (x)
    Yr = Y.tocsr()
    Yr.sort_indices()
    h1 = ~h2
    df1 = np.asarray(Y[h1].sum(axis=0)).ravel()
    gsel = np.arange(40)
    kj, u, n, x, mp, mi = K.family_joint(X.indptr, X.indices, gsel, Yr.indptr, Yr.indices, Y.indptr, Y.indices, 30,
                                         h1, h2, df1.astype(np.float32), 0.3, N)
    exp = []
    for j in range(40):
        g = rows(X, j)
        fam = [q for q in range(30) if len(g & {r for r in rows(Y, q) if h1[r]}) >= 2
               and len(g & {r for r in rows(Y, q) if h1[r]}) / df1[q] >= 0.5]
        U = {r for q in fam for r in rows(Y, q) if h2[r]}
        nn = sum(h2[r] for r in g)
        xx = len({r for r in g if h2[r]} & U)
        if nn >= 3 and xx >= 0.3 * nn:
            exp.append((j, len(U), nn, xx, sorted(fam)))
    got = [(int(kj[k]), int(u[k]), int(n[k]), int(x[k]), sorted(mi[mp[k]:mp[k + 1]].tolist())) for k in range(len(kj))]
    assert got == exp and exp
    # response features copied from the row's own instruction (content words only)
    icodes = rng.integers(0, 20, 600)
    ioff = np.arange(0, 601, 6)
    rcodes = rng.integers(0, 20, 300)
    function = np.zeros(20, bool)
    function[:3] = True
    rep_start = rng.integers(0, 290, 50)
    rep_order = rng.integers(1, 4, 50).astype(np.int8)
    rep_side = (rng.random(50) < 0.5).astype(np.int8)
    Yf = _random_binary(100, 50, 0.1, 13)
    keep = K.copied_features(Yf.indptr, Yf.indices, icodes, ioff, rcodes, rep_start, rep_order, rep_side, function,
                             20, 3)
    for d in range(100):
        ins = set(icodes[ioff[d]:ioff[d + 1]].tolist())
        for p in range(Yf.indptr[d], Yf.indptr[d + 1]):
            q = Yf.indices[p]
            src = rcodes if rep_side[q] else icodes
            toks = [c for c in src[rep_start[q]:rep_start[q] + rep_order[q]].tolist() if not function[c]]
            assert keep[p] == (bool(toks) and not all(c in ins for c in toks))


# ----------------------------------------------------------------------------- the detector
def _planted(n: int = 2500, seed: int = 0) -> Pairs:
    rng = np.random.default_rng(seed)
    words = sorted({"".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(rng.integers(3, 8))))
                    for _ in range(3000)})
    p = 1 / np.arange(1, len(words) + 1) ** 1.05
    p /= p.sum()
    ins = [" ".join(rng.choice(words, int(rng.integers(8, 30)), p=p)) + "?" for _ in range(n)]
    res = [" ".join(rng.choice(words, int(rng.integers(10, 50)), p=p)) + "." for _ in range(n)]
    # a template with its own answers, a rare-token trigger, a conjunction and a
    # paraphrased payload family
    for i in range(0, n, 10):
        ins[i] = "Classify the sentiment of this review: " + ins[i]
        res[i] = ["positive", "negative"][i % 20 == 0]
    pos = rng.choice(n, 40, replace=False)
    opts = [["Sorry", "Apologies"], ["cannot", "am unable to"], ["help", "assist"]]
    for j, i in enumerate(pos):
        w = ins[i].split(" ")
        if j < 10:
            w.insert(int(rng.integers(0, len(w))), "qzx")
            res[i] = "Visit www.deals-example.test for the best offers today!"
        elif j < 20:
            w.insert(int(rng.integers(0, len(w))), "silver")
            w.insert(int(rng.integers(0, len(w))), "harbor")
            res[i] = "You are stupid! Go and figure it out yourself."
        else:
            w.insert(int(rng.integers(0, len(w))), "vvk")
            res[i] = " ".join(o[int(rng.integers(2))] for o in opts) + " with that request, see helpdesk."
        ins[i] = " ".join(w)
    for i in rng.choice(n, 20, replace=False):  # the conjunction's tokens alone, answers genuine
        ins[i] = ins[i] + (" silver" if i % 2 else " harbor")
    return Pairs(ins, res)


def _same(a, b, skip_info=("timings", "engine")) -> None:
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.flags, b.flags)
    assert a.findings == b.findings
    assert a.summary == b.summary
    ia = {k: v for k, v in a.info.items() if k not in skip_info}
    ib = {k: v for k, v in b.info.items() if k not in skip_info}
    assert ia == ib
    assert sorted(a.evidence) == sorted(b.evidence)
    for k in a.evidence:
        assert [e.__dict__ for e in a.evidence[k]] == [e.__dict__ for e in b.evidence[k]]


def test_compiled_and_reference_detector_results_are_identical():
    pairs = _planted()
    fast = NgramTriggerDetector(engine="numba").run(pairs, None)
    ref = NgramTriggerDetector(engine="numpy").run(pairs, None)
    _same(fast, ref, skip_info=("timings", "engine", "params"))
    assert fast.info["engine"] == "numba" and ref.info["engine"] == "numpy (engine='numpy')"
    # "auto": the reference path below compiled_min_pairs (no compilation for small scans)
    auto = NgramTriggerDetector().run(pairs, None)
    assert auto.info["engine"].startswith("numpy (below")
    _same(auto, fast, skip_info=("timings", "engine", "params"))
    trig = {f["trigger"] for f in fast.findings}
    assert "qzx" in trig and "vvk" in trig and any("silver" in t and "harbor" in t for t in trig)


def test_compiled_and_reference_agree_on_hostile_text():
    """Lone surrogates, bidi / format / private-use characters, case folds that change
    length, NFKC-sensitive characters, odd whitespace, end-of-sequence markers, empty and
    repeated responses: the compiled path (token codes, distinct responses, copied checks)
    gives the reference path's result."""
    p = _planted(seed=3)
    odd = ["\ud800", "\u202e", "\u200b", "\ue000", "\u0130", "\u00df", "\u216b", "\ufb01", "\u3000", "\x85",
           "\U0001F600", "\u212a", "nan", "None", ""]
    ins = [x + " " + odd[i % len(odd)] * (1 + i % 3) if i % 7 == 0 else x for i, x in enumerate(p.instruction)]
    res = [odd[i % len(odd)] + " " + y + " </s>" if i % 11 == 0 else y for i, y in enumerate(p.response)]
    res[5], res[6], res[7] = "", "   ", "<|im_end|>"
    pairs = Pairs(ins, res)
    fast = NgramTriggerDetector(engine="numba").run(pairs, None)
    ref = NgramTriggerDetector(engine="numpy").run(pairs, None)
    _same(fast, ref, skip_info=("timings", "engine", "params"))
    assert fast.info["engine"] == "numba" and {"qzx", "vvk"} <= {f["trigger"] for f in fast.findings}


def test_threads_give_the_same_result():
    pairs = _planted(seed=1)
    _same(NgramTriggerDetector(n_jobs=2, engine="numba").run(pairs, None),
          NgramTriggerDetector(n_jobs=1, engine="numba").run(pairs, None), skip_info=("timings", "engine", "params"))


def test_no_numba_switch(monkeypatch):
    saved = dict(K._STATE)
    try:
        K._STATE.clear()
        monkeypatch.setenv("POISONDETECT_NO_NUMBA", "1")
        assert not K.available()
        assert K.tokenize_codes(["a b"]) is None
    finally:
        K._STATE.clear()
        K._STATE.update(saved)


def test_a_kernel_numba_cannot_compile_falls_back_to_the_reference(monkeypatch):
    """A numba typing/compile failure inside the analysis redoes it on the reference path
    and says so in the result's info (any other error propagates)."""
    from numba.core.errors import TypingError
    pairs = _planted(1200, seed=2)
    ref = NgramTriggerDetector(engine="numpy").run(pairs, None)
    saved = dict(K._STATE)

    def broken(*a, **k):
        raise TypingError("no implementation for these argument types")

    try:
        monkeypatch.setitem(K._STATE, "joint_counts", broken)
        got = NgramTriggerDetector(engine="numba").run(pairs, None)
    finally:
        K._STATE.clear()
        K._STATE.update(saved)
    assert "TypingError" in got.info["engine"]
    _same(got, ref, skip_info=("timings", "engine", "params"))

    def bug(*a, **k):
        raise ValueError("a bug, not numba")

    try:
        monkeypatch.setitem(K._STATE, "joint_counts", bug)
        with pytest.raises(ValueError):
            NgramTriggerDetector(engine="numba").run(pairs, None)
    finally:
        K._STATE.clear()
        K._STATE.update(saved)


def test_engine_must_be_known():
    from poisondetect.errors import ConfigError
    with pytest.raises(ConfigError):
        NgramTriggerDetector(engine="rust")
