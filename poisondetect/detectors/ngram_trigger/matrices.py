"""Binary sparse matrices of the n-gram analysis: built from (doc, column) pairs, row
Jaccard similarities, and the bare index arrays of a CSR matrix."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp



def binary_csr(docs: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(docs), np.float32), (docs, cols)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def jaccard_matrix(M: sp.spmatrix, exclude_cols: set[int] | None = None) -> np.ndarray:
    """Pairwise Jaccard similarities of the rows of binary matrix ``M`` (dense n x n),
    the columns ``exclude_cols`` left out; 0 where both rows are empty."""
    M = sp.csr_matrix(M)
    inter = (M @ M.T).toarray()
    if exclude_cols:
        Tm = M[:, np.fromiter(exclude_cols, np.int64)]
        inter -= (Tm @ Tm.T).toarray()
    size = np.diag(inter).copy()
    union = size[:, None] + size[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)




class Rows:
    """The index arrays of a binary CSR matrix (indptr, indices), without scipy's checks."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray) -> None:
        self.indptr, self.indices = indptr, indices
