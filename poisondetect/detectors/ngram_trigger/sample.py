"""Bottom-k sample sketch of the pairs and the verify pass over the held-out pairs: pair
ids, their pseudo-random keys, the query a finding becomes, and its held-out counts."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ... import hashing
from ... import text as T
from ...types import Pairs


TURN_BITS = 20  # pair id = row << 20 | turn (a record's assistant turns are distinct pairs)
SAMPLE_SALT = np.uint64(0x2545F4914F6CDD1D)


def pair_ids(pairs: Pairs) -> np.ndarray:
    return (np.asarray(pairs.row, np.int64) << TURN_BITS) | (np.asarray(pairs.turn, np.int64) & ((1 << TURN_BITS) - 1))


def sample_keys(pid: np.ndarray, random_state: int) -> np.ndarray:
    """A pseudo-random 64-bit key per pair id (a bijection for a fixed seed)."""
    with np.errstate(over="ignore"):
        salt = hashing.mix64(np.array([random_state], np.uint64) + SAMPLE_SALT)[0]
        return hashing.mix64(pid.astype(np.uint64) ^ salt)


def bottom_k(key: np.ndarray, pid: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest (key, pair id), in their input order."""
    order = np.lexsort((pid, key))[:k]
    return np.sort(order)


def query_of(fd: dict[str, Any]) -> dict[str, Any]:
    """What the verify pass matches for one finding: trigger token sequences (any one of
    them; all of them for a conjunction), payload sequences (any), the companion the
    sample's test was conditioned on."""
    return {"trigger": [list(s) for s in fd["_trigger_seqs"]], "all": fd["mode"] == "conjunction",
            "payload": [list(s) for s in fd["_payload_seqs"]],
            "companion": list(fd["_companion_seq"]) if fd.get("_companion_seq") else None}


def seq_presence(texts: list[str], seqs: list[list[str]]) -> np.ndarray:
    """Boolean (len(texts), len(seqs)): does text i contain token sequence j (lower-cased
    tokens of :func:`poisondetect.text.tokenize_many`, within one text)?"""
    out = np.zeros((len(texts), len(seqs)), bool)
    if not texts or not seqs:
        return out
    vocab: dict[str, int] = {}
    for sq in seqs:
        for t in sq:
            vocab.setdefault(t, len(vocab) + 1)
    flat, lens = T.tokenize_many(texts)
    if not flat:
        return out
    arr = np.empty(len(flat), dtype=object)
    arr[:] = flat
    codes, uniq = pd.factorize(arr)
    del flat, arr
    tok_of_uniq = np.fromiter((vocab.get(u.lower(), 0) for u in uniq), np.int32, len(uniq))
    tok = tok_of_uniq[codes]
    doc = np.repeat(np.arange(len(texts), dtype=np.int64), lens)
    hit = np.flatnonzero(tok)  # positions holding any query token (few)
    htok = tok[hit]
    for j, sq in enumerate(seqs):
        ids = [vocab[t] for t in sq]
        if not ids:
            continue
        pos = hit[htok == ids[0]]
        for off, tid in enumerate(ids[1:], 1):
            p2 = pos + off
            ok = p2 < len(tok)
            pos, p2 = pos[ok], p2[ok]
            pos = pos[(tok[p2] == tid) & (doc[p2] == doc[pos])]
        out[np.unique(doc[pos]), j] = True
    return out


def verify_batch(pairs: Pairs, query: list[dict[str, Any]], threshold: int, random_state: int) -> dict[str, Any]:
    """Per finding: held-out counts [N, n_trigger, n_payload, both] (pairs whose sample
    key is above ``threshold``, restricted to the companion's pairs when the sample's
    test was conditioned on one) and the pair ids of every pair with the trigger / the
    payload (held out or not)."""
    pid = pair_ids(pairs)
    held = sample_keys(pid, random_state) > np.uint64(threshold)
    iseqs: list[list[str]] = []
    rseqs: list[list[str]] = []

    def index(store: list[list[str]], seqs: list[list[str]]) -> list[int]:
        return [store.index(s) if s in store else (store.append(s) or len(store) - 1) for s in seqs]

    plan = []
    for q in query:
        ti = index(iseqs, q["trigger"])
        ci = index(iseqs, [q["companion"]])[0] if q["companion"] else None
        pi = index(rseqs, q["payload"])
        plan.append((ti, q["all"], ci, pi))
    ins = seq_presence(list(pairs.instruction), iseqs)
    res = seq_presence([T.strip_eos(r) for r in pairs.response], rseqs)
    counts = np.zeros((len(query), 4), np.int64)
    trig, pay = [], []
    for j, (ti, all_, ci, pi) in enumerate(plan):
        g = ins[:, ti].all(axis=1) if all_ else ins[:, ti].any(axis=1)
        f = res[:, pi].any(axis=1) if pi else np.zeros(len(pairs), bool)
        u = held & ins[:, ci] if ci is not None else held
        counts[j] = [u.sum(), (g & u).sum(), (f & u).sum(), (g & f & u).sum()]
        trig.append(pid[g])
        pay.append(pid[f])
    return {"counts": counts, "n_held": int(held.sum()), "trig": trig, "pay": pay}
