"""Embeddings and the shared semantic statistics (kNN graph, clusters) of a scan."""
from __future__ import annotations

from .cache import EmbeddingCache, text_digests
from .knn import knn_blocked
from .models import (Embedder, HashEmbedder, StaticEmbedder, TransformerEmbedder, default_cache_dir,
                     default_model_path, distill_static, load_static, make_embedder, resolve_mode)

__all__ = ["Embedder", "HashEmbedder", "StaticEmbedder", "TransformerEmbedder", "EmbeddingCache",
           "text_digests", "knn_blocked", "default_cache_dir", "default_model_path", "distill_static",
           "load_static", "make_embedder", "resolve_mode"]
