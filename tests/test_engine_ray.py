"""Ray Data backend: on a local Ray instance (2 CPUs, no dashboard), a sharded scan equals
the local engine row for row (scores, flags, evidence, triggers).  Skips without ray."""
from __future__ import annotations

import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="ray[data] not installed (pip install 'ray[data]')")
pytest.importorskip("ray.data")

from poisondetect.engine import scan_streaming  # noqa: E402
from poisondetect.engine.chunking import open_chunks  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import test_engine as te  # noqa: E402


@pytest.fixture(scope="module")
def ray_local():
    import ray.cloudpickle as cp
    cp.register_pickle_by_value(te)  # test-only detectors travel to the workers by value
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    if started:
        ray.shutdown()


def test_ray_equals_local(ray_local, tmp_path) -> None:
    """Test detectors of both streaming kinds plus every registered streamable detector,
    in one Ray scan (Ray start-up dominates the cost of this test)."""
    pairs = te._pairs(900)
    reg = [d for d in te.STREAMABLE if d != "<none>"]

    def dets():
        return [te.RowDet(), te.CountDet()] + reg
    local = scan_streaming(pairs, detectors=dets(), embedding={"mode": "none"}, chunk_size=400, keep_text="all")
    # sharded differently from the local chunks (shards of 260, Ray batches of 200); few
    # batches, because a mergeable detector without finalize_stats redoes its analysis per batch
    dist = scan_streaming(pairs, detectors=dets(), embedding={"mode": "none"}, chunk_size=260, keep_text="all",
                          engine="ray", work_dir=str(tmp_path),
                          ray_options={"batch_size": 200, "concurrency": 2})
    te._assert_same(local, dist, [d for d in ["row_test", "count_test"] + reg if d in local.results])
    assert dist.params["engine"] == "ray" and dist.load_info["streaming"]["n_shards"] == 4
    assert local.triggers and dist.pairs.instruction == pairs.instruction
    assert any(t["trigger"] == "cfq" for t in dist.triggers)


def test_shards_roundtrip(tmp_path) -> None:
    from poisondetect.engine.chunking import shard_source, write_shards
    pairs = te._pairs(50)
    paths, hashes, n = write_shards(iter(open_chunks(pairs, 16)), str(tmp_path))
    assert n == 50 and len(paths) == 4
    back = list(shard_source(paths))
    assert sum(len(b) for b in back) == 50
    assert [x for b in back for x in b.instruction] == pairs.instruction
    assert [x for b in back for x in b.source] == pairs.source


def test_ray_sampled_ngram_equals_local(ray_local, tmp_path) -> None:
    """The n-gram detector above its sample size: statistics pass (bottom-k sketch),
    verify pass on the workers (held-out counts) and scoring pass equal the local engine."""
    from poisondetect.detectors.ngram_trigger import NgramTriggerDetector
    pairs = te._planted_pairs(900)
    kw = dict(embedding={"mode": "none"}, keep_text="all")
    local = scan_streaming(pairs, detectors=[NgramTriggerDetector(sample_size=400)], chunk_size=400, **kw)
    dist = scan_streaming(pairs, detectors=[NgramTriggerDetector(sample_size=400)], chunk_size=260, engine="ray",
                          work_dir=str(tmp_path), ray_options={"batch_size": 200, "concurrency": 2}, **kw)
    assert local.results["ngram_trigger"].info["sampled"]["n_findings_verified"] >= 1
    te._assert_same(local, dist, ["ngram_trigger"])
    assert any(t["trigger"] == "qzv" for t in dist.triggers)
