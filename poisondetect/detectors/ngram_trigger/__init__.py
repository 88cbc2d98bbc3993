"""Trigger -> payload association: instruction n-grams whose presence predicts an
unusually concentrated response.

How it works (no per-n-gram Python loop over the corpus: the tokenising, n-gram index,
co-occurrence and companion counts run in compiled kernels, :mod:`poisondetect.detectors.ngram_trigger.kernels`,
numba, each with a numpy / scipy.sparse reference path that gives identical results and is
used where numba is unavailable, with ``POISONDETECT_NO_NUMBA=1``, or if numba cannot
compile a kernel, which ``info["engine"]`` reports):

1. Both sides are tokenised with :mod:`poisondetect.text` (lower-cased words, punctuation
   runs such as ``??``, invisible characters as tokens of their own).  Instruction
   features are the word 1..``max_n``-grams; response features ("payload signatures") are
   the response word ``response_n``-grams (the whole response when shorter) and the
   normalised exact response.  A response feature that also occurs in the *same* row's
   instruction is not counted for that row (answers copied from the prompt, e.g. a label
   chosen from the options listed in the prompt, are not payloads).
2. Joint counts of every (instruction n-gram g, response feature f) with both document
   frequencies in ``[min_support, max_*_frac * n]`` come from one sparse product
   ``X.T @ Y``.  Candidates must be *concentrated*: ``P(f | g) >= min_concentration`` and
   ``P(g | f) >= min_coverage`` (a backdoor fires nearly every time; several alternative
   triggers can share one payload, so coverage may be 1/k).
3. Each candidate gets a one-sided Fisher exact (hypergeometric) p-value.  If the
   trigger has *companions* (other n-grams, sharing no token with it, present in at
   least ``companion_coverage`` of its rows: the rest of a prompt template, a repeated
   passage, a duplicated instruction), the test is conditional: it is run only among the
   rows holding the most specific companion, so a template phrase whose answers are
   explained by the rest of its template (or a duplicate) gets no evidence.
4. Conjunctions (CTBA): for a payload whose rows are covered by several n-grams none of
   which is concentrated enough alone, pairs and triples of them are tested as "all
   present".
5. Paraphrased payloads (``paraphrase_families``): a trigger whose responses each carry
   *some* phrase of one payload family, though no single phrase is in 90% of them.
   Data splitting keeps the p-value exact: the rows are split at random into halves;
   the family of n-gram g is chosen on the first half (response features seen with g in
   >= 2 rows, at least half of whose rows hold g) and tested on the second (one-sided
   Fisher: do g's rows carry a family phrase more often than the other rows?).  One
   family test per trigger n-gram joins the single-n-gram BH family.  Before reporting,
   a family must look like a planted payload and not a topic's answer style: a short
   trigger (its maximal phrase <= ``family_max_trigger_tokens``), unrelated trigger rows
   (the context gate below), responses made of the family's words (median content-word
   coverage >= ``family_min_response_coverage``), and a variant that does not depend on
   the request (Mantel permutation test between the rows' instruction overlap and the
   overlap of their family phrases: p > ``family_request_dependence_p``).
6. Benjamini-Hochberg (``scipy.stats.false_discovery_control``) over *every* tested
   candidate: all (g, f) pairs whose marginal frequencies qualify (independent
   filtering; pairs never enumerated count with p = 1, which is conservative) plus every
   conjunction and family tried.  n-grams of one phrase (identical or nested row sets)
   are merged into one finding.

Mergeable statistics, bounded memory: ``partial_stats`` is a bottom-k sample sketch of
the batch (the ``sample_size`` pairs with the smallest pseudo-random key, a 64-bit mix of
the pair's row/turn and ``random_state``) and ``merge_stats`` keeps the bottom k of the
union, so the sample never depends on how the input was chunked or sharded.
``finalize_stats`` tokenises the sample and runs steps 1-6 on it, once.

- Up to ``sample_size`` pairs (100,000 by default) the sample is the whole input and the
  analysis is exact.
- Above it, memory stays that of a ``sample_size`` analysis. Each finding of the sample
  becomes a query for one more streamed pass (``verify_stats``). That pass counts, over
  the held-out pairs (those outside the sample), the pairs with the trigger, with the
  payload and with both, within the companion's pairs when the sample's test was
  conditional. It also collects the trigger and payload pairs of the whole input.
  ``finalize_verify`` then gives each finding a one-sided Fisher test on the held-out
  counts and applies BH across the findings verified. The sample chose the findings and
  the held-out pairs never took part in that choice, so these p-values are exact
  (data splitting, as in step 5).
- Sensitivity limit: a trigger must reach ``min_support`` rows *in the sample* to be
  found. At 1M pairs and the default sample that is ~40 poisoned rows (0.004%).

Modules (one idea each; :class:`~.analysis.Analysis` combines the analysis mixins over
the state that :meth:`~.features.FeaturesMixin.build` sets):

- :mod:`.detector`: the detector's parameters, the mergeable sample statistic, the
  verify pass, scores and evidence;
- :mod:`.sample`: pair ids, sample keys, the bottom-k sketch and the held-out counts;
- :mod:`.tokenise`, :mod:`.workers`: tokens of both sides, exact responses, n-gram ids;
  how many threads / processes;
- :mod:`.features`: the matrices X (instruction n-grams) and Y (payload features);
- :mod:`.candidates`: the test order, joint counts, conjunctions, Benjamini-Hochberg;
- :mod:`.families`: paraphrased payload families and their gates;
- :mod:`.conditional`: template companions and the conditional tests;
- :mod:`.gates`: request-context similarity gates;
- :mod:`.findings`: merging significant candidates into findings;
- :mod:`.pvalues`, :mod:`.matrices`: Fisher tails under a BH bound; sparse helpers;
- :mod:`.kernels` (the dispatching layer, numba imported lazily), :mod:`.jit_index`,
  :mod:`.jit_counts`: the compiled kernels.
"""
from __future__ import annotations

from .detector import NgramTriggerDetector

__all__ = ["NgramTriggerDetector"]
