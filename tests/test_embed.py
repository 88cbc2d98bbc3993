"""Embedders, the on-disk cache and the shared kNN graph."""
from __future__ import annotations

import os

import numpy as np
import pytest

from poisondetect.context import ScanContext
from poisondetect.embed import EmbeddingCache, HashEmbedder, knn_blocked, text_digests
from poisondetect.embed.knn import knn_ivf
from poisondetect.embed.models import resolve_mode
from poisondetect.embed.shared import encode_cached
from poisondetect.types import Pairs


class CountingEmbedder(HashEmbedder):
    """Hash embedder that records every text it was asked to encode."""

    def __init__(self) -> None:
        super().__init__(64)
        self.seen: list[str] = []

    def _encode(self, texts, batch_size):
        self.seen.extend(texts)
        return super()._encode(texts, batch_size)


def test_hash_embedder_normalised_and_deterministic():
    e = HashEmbedder(128)
    X = e.encode(["hello world", "hello there world", "", "completely different text"])
    assert X.dtype == np.float32 and X.shape == (4, 128)
    n = np.linalg.norm(X, axis=1)
    assert np.allclose(n[[0, 1, 3]], 1.0, atol=1e-5) and n[2] == 0.0
    assert np.array_equal(X, HashEmbedder(128).encode(["hello world", "hello there world", "", "completely different text"]))
    assert X[0] @ X[1] > X[0] @ X[3]


def test_cache_hit_embeds_nothing_new(tmp_path):
    texts = [f"text number {i} about things" for i in range(50)] + ["dup", "dup"]
    e = CountingEmbedder()
    A = encode_cached(e, texts, str(tmp_path))
    assert len(e.seen) == 51  # duplicates embedded once
    e2 = CountingEmbedder()
    B = encode_cached(e2, texts, str(tmp_path))
    assert e2.seen == []
    assert np.array_equal(A, B)


def test_grown_dataset_embeds_only_new(tmp_path):
    old = [f"old text {i}" for i in range(30)]
    new = [f"new text {i}" for i in range(7)]
    encode_cached(CountingEmbedder(), old, str(tmp_path))
    e = CountingEmbedder()
    X = encode_cached(e, old + new, str(tmp_path))
    assert sorted(e.seen) == sorted(new)
    assert np.allclose(X, HashEmbedder(64).encode(old + new), atol=1e-6)


def test_cache_ignores_torn_shard_and_compacts(tmp_path):
    e = HashEmbedder(16)
    c = EmbeddingCache(str(tmp_path), e.model_id, e.dim)
    for i in range(20):  # more than MAX_SHARDS shards -> compaction
        t = [f"t{i}"]
        c.add(text_digests(t), e.encode(t))
    shards = [f for f in os.listdir(c.folder) if f.endswith(".keys.npy")]
    assert len(shards) <= 16
    # a torn write (vectors without keys, or a temp file) is invisible
    np.save(os.path.join(c.folder, "zzz.vecs.npy"), np.zeros((3, 16), np.float32))
    open(os.path.join(c.folder, ".tmp-abc.npy"), "wb").write(b"garbage")
    found, vecs = c.lookup(text_digests([f"t{i}" for i in range(20)] + ["missing"]))
    assert found[:20].all() and not found[20]
    assert np.allclose(vecs[:20], e.encode([f"t{i}" for i in range(20)]))


def test_knn_shapes_self_exclusion_and_exactness():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 16)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    X = np.concatenate([X, X[:40]])  # exact duplicates
    idx, dist = knn_blocked(X, 7)
    assert idx.shape == (340, 7) and dist.shape == (340, 7)
    assert not (idx == np.arange(340)[:, None]).any()
    assert (np.diff(dist, axis=1) >= -1e-6).all()
    S = X @ X.T
    np.fill_diagonal(S, -np.inf)
    ref = np.sort(1 - np.sort(S, axis=1)[:, ::-1][:, :7], axis=1)
    assert np.allclose(dist, ref, atol=1e-5)
    assert (dist[300:, 0] < 1e-6).all()  # a duplicate's nearest is its twin


def test_knn_ivf_recall_and_determinism():
    rng = np.random.default_rng(1)
    C = rng.standard_normal((40, 24)).astype(np.float32)
    X = C[rng.integers(0, 40, 3000)] + 0.3 * rng.standard_normal((3000, 24)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    exact, _ = knn_blocked(X, 10, dedupe=False)
    a, da = knn_ivf(X, 10, min_candidates=600)
    b, db = knn_ivf(X, 10, min_candidates=600)
    assert np.array_equal(a, b) and np.array_equal(da, db)
    recall = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(exact, a)])
    assert recall > 0.9
    assert not (a == np.arange(3000)[:, None]).any()


def test_context_knn_and_embeddings(tmp_path):
    pairs = Pairs.from_lists([f"question {i} about cats" for i in range(40)], [f"answer {i % 7}" for i in range(40)])
    ctx = ScanContext(pairs, embedding={"mode": "hash"}, cache_dir=str(tmp_path))
    E = ctx.embeddings("instruction")
    assert E.shape == (40, 256) and np.allclose(np.linalg.norm(E, axis=1), 1, atol=1e-5)
    idx, dist = ctx.knn("response", 5)
    assert idx.shape == (40, 5)
    i3, _ = ctx.knn("response", 3)
    assert np.array_equal(i3, idx[:, :3])  # one graph, sliced


def test_auto_mode_small_scan_uses_transformer_not_static():
    assert resolve_mode({"mode": "auto", "device": "cpu"}, 600) == "transformer"
    assert resolve_mode({"mode": "auto", "device": "cpu"}, 100_000) == "static"
    assert resolve_mode({"mode": "auto", "device": "cuda"}, 100_000) == "transformer"
    with pytest.raises(Exception):
        resolve_mode({"mode": "bogus"}, 1)


@pytest.mark.slow
def test_minilm_loads_offline_and_normalises(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from poisondetect.embed import TransformerEmbedder
    e = TransformerEmbedder(device="cpu")
    X = e.encode(["A cat sat on the mat.", "A kitten rested on the rug.", "Quarterly tax filing deadlines."])
    assert X.shape == (3, 384)
    assert np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    assert X[0] @ X[1] > X[0] @ X[2]
    assert e.model_id.startswith("transformer:") and len(e.model_id.split(":")[2]) == 16


def _tiny_static_folder(tmp_path):
    """A static model folder with a random table and the packaged MiniLM tokenizer."""
    import json
    import shutil

    from safetensors.numpy import save_file

    from poisondetect.embed import default_model_path
    folder = tmp_path / "static"
    folder.mkdir()
    V = 30522
    table = np.random.default_rng(0).standard_normal((V, 32)).astype(np.float32)
    save_file({"embeddings": table}, str(folder / "model.safetensors"))
    shutil.copyfile(os.path.join(default_model_path(), "tokenizer.json"), folder / "tokenizer.json")
    (folder / "meta.json").write_text(json.dumps({"source_id": "test", "skip_ids": [0, 100, 101, 102, 103]}))
    return str(folder)


def test_static_embedder_batch_independent_and_normalised(tmp_path):
    from poisondetect.embed import StaticEmbedder
    e = StaticEmbedder(_tiny_static_folder(tmp_path))
    texts = ["the cat sat on the mat", "A dog barked at the mailman, loudly!", "zebra quantum flux", ""]
    a = e.encode(texts)
    assert a.shape == (4, 32) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a[:3], axis=1), 1, atol=1e-5) and not a[3].any()
    e._word_memo.clear()
    b = np.concatenate([e.encode([t]) for t in texts])
    e._word_memo.clear()
    c = e.encode(["unrelated words first"] + texts[::-1])[1:][::-1]
    assert np.array_equal(a, b) and np.array_equal(a, c)  # bit-identical whatever the batch
    assert e.model_id.startswith("static:test:")
