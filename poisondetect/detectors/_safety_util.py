"""Old import path of the safety detectors' helpers, kept for code outside the detectors
(``poisondetect.bench.data``, ``benchmarks/``, older tests).  The helpers live in
:mod:`._refusal` (refusal style), :mod:`._harm` (harmfulness of requests) and
:mod:`._safety_common` (the scan's embeddings or why not, evidence excerpts); import
from those."""
from __future__ import annotations

from ._harm import (BENIGN_FILE, CONTRAST_FILE, HARMFUL_FILE, benign_references, harm_probability,
                    load_prototypes, request_cores, shared_harm, topk_mean_sim)
from ._refusal import (capability_explained, refusal_features, refusal_score, refusal_scoped, refusal_scores,
                       shared_refusal)
from ._safety_common import clip_text, embed_texts_or_reason, embeddings_or_reason, try_embeddings

__all__ = ["BENIGN_FILE", "CONTRAST_FILE", "HARMFUL_FILE", "benign_references", "capability_explained", "clip_text",
           "embed_texts_or_reason", "embeddings_or_reason", "harm_probability", "load_prototypes", "refusal_features",
           "refusal_score", "refusal_scoped", "refusal_scores", "request_cores", "shared_harm", "shared_refusal",
           "topk_mean_sim", "try_embeddings"]
