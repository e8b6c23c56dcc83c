#!/usr/bin/env python3
"""FAISS IndexIVFPQ with exact re-ranking, on the data of bench_ivfpq.sh.

A comparison point for the ivfpq index (docs/benchmarks.md, section 6): the
same vectors and queries, the exact top 10 computed in this run (IndexFlatL2,
brute force), then IndexIVFPQ (M = 16, nbits = 8, L2) swept over nprobe and
re-rank depth R, one thread (faiss.omp_set_num_threads(1)).  Re-ranking is
IndexRefineFlat: the IVFPQ search returns R candidates (k_factor = R / 10),
whose exact L2 distances to the stored vectors pick the final 10.  R = 0 is
the IVFPQ result alone (ADC distances).

QPS "1 at a time" issues one query per search call, as a database client
would; QPS "batched" passes all queries in one call (still one thread).  Both
are in-process: no SQL, no round trip.

With --with-ivfpq the same run then calls tests/bench/bench_ivfpq.sh with the
matching DATASET, N, NQ, SEED, LISTS, PROBES and RERANK (pgvector skipped);
it needs a server with pgquant reachable through PGHOST / PGPORT / PGUSER.

Environment (defaults in brackets), as in bench_ivfpq.sh:
  DATASET  siftsmall | mixture                       [siftsmall]
  DATA_DIR directory holding siftsmall/               [../shared/data]
  N NQ SEED  mixture size, queries, seed             [1000000 100 4200]
  WORK     mixture: scratch directory                 [/tmp/pgquant-bench-faiss]
  LISTS    nlist                                      [100 siftsmall, 1000 mixture]
  PROBES   nprobe values                              ["1 2 4 8 16"]
  RERANK   re-rank depths                             ["0 50 100 200"]
  SECONDS  seconds of one-at-a-time queries per point [5]

Needs numpy and faiss (Debian: apt-get install python3-faiss python3-numpy).
Not used by the tests or CI: without faiss it says so and exits 0.
"""

import os
import subprocess
import sys
import time

try:
    import numpy as np
    import faiss
except ImportError as e:
    print(f"bench_faiss.py: skipped, {e.name} is not installed "
          "(apt-get install python3-faiss python3-numpy)")
    sys.exit(0)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def env(name, default):
    return os.environ.get(name, default)


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    if raw.size == 0:
        raise SystemExit(f"{path}: empty")
    d = int(raw[0])
    if d <= 0 or raw.size % (d + 1) != 0:
        raise SystemExit(f"{path}: not an fvecs file")
    rows = raw.reshape(-1, d + 1)
    if not (rows[:, 0] == d).all():
        raise SystemExit(f"{path}: rows of differing dimension")
    return np.ascontiguousarray(rows[:, 1:].view(np.float32))


def load(dataset):
    if dataset == "siftsmall":
        data_dir = env("DATA_DIR", os.path.join(ROOT, "..", "shared", "data"))
        base = read_fvecs(os.path.join(data_dir, "siftsmall", "siftsmall_base.fvecs"))
        query = read_fvecs(os.path.join(data_dir, "siftsmall", "siftsmall_query.fvecs"))
        return base, query, "TEXMEX siftsmall: 10,000 x 128 SIFT descriptors, 100 queries"
    n, nq, seed = int(env("N", "1000000")), int(env("NQ", "100")), int(env("SEED", "4200"))
    work = env("WORK", "/tmp/pgquant-bench-faiss")
    os.makedirs(work, exist_ok=True)
    gen = os.path.join(work, "gen_mixture")
    subprocess.run(["cc", "-std=gnu11", "-O2", "-I" + os.path.join(ROOT, "src"), "-o", gen,
                    os.path.join(HERE, "gen_mixture.c"), "-lm"], check=True)
    # The same arguments as bench_ivfpq.sh, without chunking: the same vectors.
    bpath, qpath = os.path.join(work, "base.fvecs"), os.path.join(work, "query.fvecs")
    subprocess.run([gen, str(n), "128", "1000", "16", str(seed), bpath], check=True)
    subprocess.run([gen, str(nq), "128", "1000", "16", str(seed + 1), qpath], check=True)
    base, query = read_fvecs(bpath), read_fvecs(qpath)
    os.remove(bpath)
    os.remove(qpath)
    return base, query, (f"generated: {n:,} x 128, Gaussian mixture of 1,000 clusters in a random "
                         f"16-dimensional subspace plus noise (seed {seed}), {nq} queries (seed {seed + 1})")


def recall_at_10(found, truth):
    return float(np.mean([len(set(f[:10]) & set(t)) / 10.0 for f, t in zip(found, truth)]))


def main():
    faiss.omp_set_num_threads(1)
    dataset = env("DATASET", "siftsmall")
    nlist = int(env("LISTS", "100" if dataset == "siftsmall" else "1000"))
    probes = [int(p) for p in env("PROBES", "1 2 4 8 16").split()]
    reranks = [int(r) for r in env("RERANK", "0 50 100 200").split()]
    seconds = float(env("SECONDS", "5"))

    base, query, desc = load(dataset)
    n, d = base.shape
    nq = query.shape[0]

    t0 = time.perf_counter()
    flat = faiss.IndexFlatL2(d)
    flat.add(base)
    _, truth = flat.search(query, 10)
    exact_s = time.perf_counter() - t0
    del flat

    t0 = time.perf_counter()
    quantizer = faiss.IndexFlatL2(d)
    ivf = faiss.IndexIVFPQ(quantizer, d, nlist, 16, 8)
    ivf.train(base)
    refine = faiss.IndexRefineFlat(ivf)
    refine.add(base)  # adds to the IVFPQ index and to the flat store used for re-ranking
    build_s = time.perf_counter() - t0

    print(f"### FAISS {faiss.__version__} IndexIVFPQ: {desc}")
    print()
    print(f"`IndexIVFPQ(nlist = {nlist}, M = 16, nbits = 8)`, L2, re-ranking by IndexRefineFlat; "
          f"one OpenMP thread. Build (train on all {n:,} vectors, as FAISS subsamples, then add): "
          f"{build_s:.1f} s. Exact top 10 by IndexFlatL2 (the truth): {exact_s:.2f} s for {nq} queries.")
    print()
    print("In-process QPS (no SQL, no round trip), one thread.")
    print()
    print("| nprobe | re-rank R | recall@10 | QPS, 1 query per call | QPS, batched |")
    print("|---|---|---|---|---|")
    for p in probes:
        ivf.nprobe = p
        for r in reranks:
            if r == 0:
                index = ivf
            else:
                refine.k_factor = r / 10.0
                index = refine
            t0 = time.perf_counter()
            _, found = index.search(query, 10)
            batched = nq / (time.perf_counter() - t0)
            rc = recall_at_10(found, truth)
            # one query per call, cycling through the queries for SECONDS
            done = 0
            t0 = time.perf_counter()
            while True:
                for i in range(nq):
                    index.search(query[i:i + 1], 10)
                done += nq
                el = time.perf_counter() - t0
                if el >= seconds:
                    break
            print(f"| {p} | {r} | {rc:.3f} | {done / el:,.0f} | {batched:,.0f} |", flush=True)

    if "--with-ivfpq" in sys.argv[1:]:
        del refine, ivf, quantizer, base
        print()
        sys.stdout.flush()
        e = dict(os.environ, DATASET=dataset, LISTS=str(nlist), PROBES=" ".join(map(str, probes)),
                 RERANK=" ".join(map(str, reranks)), SECONDS=env("SECONDS", "5"), BASELINES="")
        subprocess.run([os.path.join(HERE, "bench_ivfpq.sh")], env=e, check=True)


if __name__ == "__main__":
    main()
