"""One attack family, one seed, the full default scan: the top triggers and recall@2n.

    python benchmarks/quick_family.py FAMILY CONFIG [SEED] --data-dir is taken from POISONDETECT_DATA (default ../shared/data)
"""
import sys, json, time
import os
from poisondetect.bench.harness import BenchConfig, load_clean, load_harmful_requests, find_data_dir
from poisondetect.bench.attacks import poison
from poisondetect.pipeline import scan
fam = sys.argv[1]; cfgf = sys.argv[2]; seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
c = json.load(open(cfgf))
cfg = BenchConfig(**{k: v for k, v in c.items() if k in BenchConfig.__dataclass_fields__}, data_dir=os.environ.get('POISONDETECT_DATA', '../shared/data'), seed=seed)
clean, info = load_clean(cfg)
kw = {}
from poisondetect.bench.attacks import REQUEST_FAMILIES
if fam in REQUEST_FAMILIES:
    kw['requests'] = load_harmful_requests(find_data_dir(cfg.data_dir))
p, truth = poison(clean, fam, rate=cfg.rate, seed=seed, **kw)
t = time.time()
res = scan(p, random_state=seed)
print('scan', time.time() - t)
print('truth', truth.triggers)
for tr in res.triggers[:8]:
    print({k: tr.get(k) for k in ('trigger', 'detector', 'q_value', 'mode', 'support', 'found_by', 'payload_kind')})
lab = truth.labels()
import numpy as np
o = np.argsort(-res.scores)
n = lab.sum(); print('recall@2n', lab[o[:2*n]].sum() / n)
