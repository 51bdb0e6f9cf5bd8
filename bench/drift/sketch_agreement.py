"""Sketch mode vs exact mode on the bench's drift data: verdict agreement per method (not a test).

    .venv/bin/python bench/drift/sketch_agreement.py                  # 1M × 1M rows, 20 numeric + 20 categorical
    .venv/bin/python bench/drift/sketch_agreement.py --rows 200000    # quicker

The numeric columns are bench/drift/run.py's (its generator: 8 features shifted clearly, f08 / f09 either side of
the Wasserstein threshold, the rest unshifted); 4 categorical columns are added (2 shifted, 2 not). The current
window is cut into --partitions day partitions; each is summarized (apps/monitoring/summaries.py: KLL k, counts,
reference-bin histograms), the summaries are serialized, merged, and every column is tested with each method
forced, once on the full rows (exact mode, apps/monitoring/drift.py) and once on the merged summary (sketch mode).
Prints per method: verdicts that agree, and the largest score differences.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "drift"))

NUMERIC_METHODS = ("wasserstein", "ks", "psi", "jensenshannon")
CATEGORICAL_METHODS = ("chisquare", "jensenshannon", "psi")


def main():
    import numpy as np
    import pyarrow as pa

    from apps.monitoring import drift, summaries
    from run import _categorical, _numeric

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=7)
    parser.add_argument("--k", type=int, default=2000)
    args = parser.parse_args()

    numeric_ref, numeric_cur = _numeric(args.rows, args.features, False, 1), _numeric(args.rows, args.features, True, 2)
    names, reference, current = list(numeric_ref), list(numeric_ref.values()), list(numeric_cur.values())
    categorical_ref = _categorical(args.rows, args.features, False, 1)
    categorical_cur = _categorical(args.rows, args.features, True, 2)
    cat_names, cat_ref, cat_cur = list(categorical_ref), list(categorical_ref.values()), list(categorical_cur.values())
    ref_sorted = [drift.clean_numeric(c) for c in reference]
    edges = {n: summaries.reference_edges(r) for n, r in zip(names, ref_sorted)}
    kinds = {**{n: "numeric" for n in names}, **{n: "categorical" for n in cat_names}}

    t0 = time.perf_counter()
    merged = summaries.Summary()
    size = 0
    bounds = np.linspace(0, args.rows, args.partitions + 1).astype(int)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        table = pa.table({**{n: c[lo:hi] for n, c in zip(names, current)},
                          **{n: c[lo:hi] for n, c in zip(cat_names, cat_cur)}})
        payload = summaries.summarize(table, kinds=kinds, edges=edges, k=args.k).to_bytes()
        size += len(payload)
        merged.merge(summaries.Summary.from_bytes(payload))
    print(f"{args.partitions} partition summaries of {args.rows:,} rows × {len(kinds)} columns: "
          f"{time.perf_counter() - t0:.1f} s, {size / 1e6:.1f} MB serialized; KLL k={args.k}, "
          f"rank error ±{summaries.rank_error(args.k):.4f}")

    cur_sorted = [drift.clean_numeric(c) for c in current]
    total = agree = 0
    for method in NUMERIC_METHODS:
        rows, t_exact, t_sketch = [], 0.0, 0.0
        for name, ref, cur in zip(names, ref_sorted, cur_sorted):
            t = time.perf_counter()
            exact = drift.numeric_drift(name, ref, cur, method=method)
            t_exact += time.perf_counter() - t
            t = time.perf_counter()
            sketch = summaries.numeric_drift(name, ref, merged.columns[name], method=method)
            t_sketch += time.perf_counter() - t
            rows.append((name, exact, sketch))
        same = sum(e.drifted == s.drifted for _, e, s in rows)
        flagged = sum(any("exact mode could give the other verdict" in n for n in s.notes) for _, _, s in rows)
        total, agree = total + len(rows), agree + same
        print(f"\n{method}: {same}/{len(rows)} verdicts agree, {flagged} flagged as within the sketch's error of the "
              f"threshold · exact {t_exact:.1f} s, sketch {t_sketch:.1f} s (tests only, {len(rows)} columns)")
        for name, e, s in rows:
            uncertain = any("exact mode could give the other verdict" in n for n in s.notes)
            flag = ("" if e.drifted == s.drifted else "   <-- differs") + ("   (flagged uncertain)" if uncertain else "")
            print(f"  {name}  exact {e.score:.4g} {'drift' if e.drifted else 'ok   '}  "
                  f"sketch {s.score:.4g} {'drift' if s.drifted else 'ok   '}{flag}")
    for method in CATEGORICAL_METHODS:
        same = 0
        for name, ref, cur in zip(cat_names, cat_ref, cat_cur):
            ref_counts = dict(zip(*np.unique(ref, return_counts=True)))
            ref_counts = {str(k): int(v) for k, v in ref_counts.items()}
            cur_counts = {str(k): int(v) for k, v in zip(*np.unique(cur, return_counts=True))}
            exact = drift.categorical_drift(name, ref_counts, cur_counts, method=method)
            sketch = drift.categorical_drift(name, ref_counts, merged.columns[name].counts, method=method)
            same += exact.drifted == sketch.drifted and exact.score == sketch.score
        total, agree = total + len(cat_names), agree + same
        print(f"\ncategorical {method}: {same}/{len(cat_names)} verdicts and scores identical (counts merge exactly)")
    print(f"\nall: {agree}/{total} verdicts agree")


if __name__ == "__main__":
    main()
