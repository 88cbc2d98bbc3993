"""On-disk embedding cache keyed by (model identity, sha256 of the text).

Layout: ``<cache_dir>/embeddings/<sha256(model_id)[:24]>/`` holds shards, each two
plain ``.npy`` files (no pickle): ``<name>.vecs.npy`` (float32, n x d) and
``<name>.keys.npy`` (``S32`` raw sha256 digests).  A scan appends one shard with the
texts it had to embed.  Writes go to a temporary file that is renamed into place, vectors
first and keys last, so a shard is visible only when complete; an interrupted or
concurrent writer can leave at most an orphan temp file, never a torn shard.  Readers
skip shards that vanish under them (a concurrent compaction) and just recompute.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from typing import Sequence

import numpy as np

#: merge shards when a model's folder holds more than this many
MAX_SHARDS = 16
#: shards whose sorted keys a process keeps (folder, name) -> (sorted keys, order, vectors)
_SORTED: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_SORTED_MAX = 4 * MAX_SHARDS


def text_digests(texts: Sequence[str]) -> np.ndarray:
    """sha256 digest of every text (UTF-8, surrogates escaped) as an ``S32`` array."""
    out = np.empty(len(texts), dtype="S32")
    for i, t in enumerate(texts):
        out[i] = hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest()
    return out


def _atomic_save(path: str, arr: np.ndarray) -> None:
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class EmbeddingCache:
    def __init__(self, cache_dir: str, model_id: str, dim: int) -> None:
        self.model_id = model_id
        self.dim = int(dim)
        self.folder = os.path.join(cache_dir, "embeddings",
                                   hashlib.sha256(model_id.encode()).hexdigest()[:24])
        os.makedirs(self.folder, exist_ok=True)
        meta = os.path.join(self.folder, "model.json")
        if not os.path.exists(meta):
            try:
                fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.folder)
                with os.fdopen(fd, "w") as f:
                    json.dump({"model_id": model_id, "dim": self.dim}, f)
                os.replace(tmp, meta)
            except OSError:
                pass

    def _shards(self) -> list[str]:
        try:
            names = sorted(n[:-len(".keys.npy")] for n in os.listdir(self.folder)
                           if n.endswith(".keys.npy") and not n.startswith("."))
        except FileNotFoundError:
            return []
        return names

    def _load_shard(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            keys = np.load(os.path.join(self.folder, name + ".keys.npy"), allow_pickle=False)
            vecs = np.load(os.path.join(self.folder, name + ".vecs.npy"), allow_pickle=False,
                           mmap_mode="r")
        except (FileNotFoundError, ValueError, OSError):
            return None
        if keys.dtype != np.dtype("S32") or vecs.ndim != 2 or vecs.shape != (len(keys), self.dim):
            return None
        return keys, vecs

    def _sorted_shard(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(sorted keys, their order, vectors) of a shard, kept in memory by the process:
        a shard is never changed once written (compaction writes a new one and removes
        the old, which then is no longer listed), so a scan that looks texts up hundreds
        of times loads and sorts each shard's keys once."""
        mkey = (self.folder, name)
        hit = _SORTED.get(mkey)
        if hit is not None:
            return hit
        sh = self._load_shard(name)
        if sh is None:
            return None
        keys, vecs = sh
        order = np.argsort(keys, kind="stable")
        out = (keys[order], order, vecs)
        if len(_SORTED) >= _SORTED_MAX:
            _SORTED.pop(next(iter(_SORTED)))
        _SORTED[mkey] = out
        return out

    def lookup(self, digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, vectors) for the given digests; rows not found are zero."""
        out = np.zeros((len(digests), self.dim), np.float32)
        found = np.zeros(len(digests), dtype=bool)
        if len(digests) == 0:
            return found, out
        for name in self._shards():
            sh = self._sorted_shard(name)
            if sh is None:
                continue
            sk, order, vecs = sh
            if len(sk) == 0:
                continue
            want = np.flatnonzero(~found)
            if len(want) == 0:
                break
            pos = np.searchsorted(sk, digests[want])
            pos = np.minimum(pos, len(sk) - 1)
            hit = sk[pos] == digests[want]
            if hit.any():
                rows = order[pos[hit]]
                out[want[hit]] = np.asarray(vecs[np.sort(rows)])[np.argsort(np.argsort(rows))]
                found[want[hit]] = True
        return found, out

    def add(self, digests: np.ndarray, vecs: np.ndarray) -> None:
        if len(digests) == 0:
            return
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        name = f"{uuid.uuid4().hex}"
        _atomic_save(os.path.join(self.folder, name + ".vecs.npy"), vecs)
        _atomic_save(os.path.join(self.folder, name + ".keys.npy"), np.asarray(digests, dtype="S32"))
        if len(self._shards()) > MAX_SHARDS:
            self.compact()

    def compact(self) -> None:
        """Merge all shards into one (new shard written first, then the old removed)."""
        names = self._shards()
        parts = [self._load_shard(n) for n in names]
        keep = [(n, p) for n, p in zip(names, parts) if p is not None]
        if len(keep) < 2:
            return
        keys = np.concatenate([p[0] for _, p in keep])
        vecs = np.concatenate([np.asarray(p[1]) for _, p in keep])
        _, first = np.unique(keys, return_index=True)
        first.sort()
        name = f"{uuid.uuid4().hex}"
        _atomic_save(os.path.join(self.folder, name + ".vecs.npy"), vecs[first])
        _atomic_save(os.path.join(self.folder, name + ".keys.npy"), keys[first])
        for n, _ in keep:
            for suffix in (".keys.npy", ".vecs.npy"):
                try:
                    os.unlink(os.path.join(self.folder, n + suffix))
                except FileNotFoundError:
                    pass
