"""Mergeable summaries of the prediction log (whylogs-style), and drift computed from them (sketch mode).

One Summary per (reference, log partition) holds, per column:

- categorical: exact value counts and the null count (merging adds them: exact);
- numeric: the count of finite values, the null count (NaN/±inf/missing), exact value counts while the column
  has at most MAX_EXACT_VALUES distinct values, a histogram on the *reference's* bins (Sturges edges over the
  reference, plus one open bin below and one above its range), and a KLL quantile sketch (Apache DataSketches)
  whose normalized rank error depends only on k (MONITORING_KLL_K).

Summaries merge associatively: a window's summary is the merge of its partitions', with counts and histograms
exactly those of the concatenated rows and the KLL sketch within its rank-error bound. The tests (column by column)
then run on the merged summary against the exact reference (always read in full):

- categorical tests take counts, so they are identical to exact mode;
- numeric PSI / Jensen–Shannon / chi-square use exact value counts when the reference has ≤ 20 distinct values
  (as Evidently does: identical), else the histogram on the reference's bins: exact counts, on bins that differ
  from exact mode's (Evidently bins reference and current together over both ranges). Current values outside the
  reference's range fall in the open bins, where the reference has none: sketch mode scores such a shift higher.
  (Evidently's bins with current shares read off the sketch's CDF were tried: each share is only within 2ε, and
  the no-drift PSI at 1M rows came out 40× too high.)
- KS and Wasserstein use the sketch's CDF (a step function over its retained items) clipped, bin by bin, between
  the exact shares the histogram gives at the reference's edges: off by at most min(ε, the bin's share) inside each
  bin, ε being the sketch's normalized rank error (99 % confidence). So the KS statistic D is within that of the
  exact one and the Wasserstein distance within Σ min(ε, share)·width over the bins (the open ones reaching to the
  current min and max), divided by σ(reference). With exact value counts (few distinct values) both are exact.

Over ~400 lines as one module: the summary types and the tests read off them share one convention for bins, open
bins and the clipped CDF, and the error bounds the notes state depend on both halves.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import msgspec
import numpy as np

from . import drift

MAX_EXACT_VALUES = 50  # a numeric column keeps exact value counts while it has at most this many distinct values
NUMERIC, CATEGORICAL = drift.NUMERIC, drift.CATEGORICAL
FORMAT = 1  # of the serialized bytes


def kll_k() -> int:
    from django.conf import settings

    return settings.MONITORING_KLL_K


def rank_error(k: int) -> float:
    """The KLL sketch's normalized rank error bound for k (over all ranks at once, 99 % confidence)."""
    from datasketches import kll_doubles_sketch

    return float(kll_doubles_sketch.get_normalized_rank_error(k, True))


def reference_edges(ref_sorted: np.ndarray) -> np.ndarray | None:
    """The reference's bins (fixed at ingest; the current window is binned on them): numpy's Sturges edges."""
    if ref_sorted.size == 0:
        return None
    return sturges_edges(ref_sorted[0], ref_sorted[-1], ref_sorted.size)


def sturges_edges(first: float, last: float, n: int) -> np.ndarray:
    """np.histogram_bin_edges(values, bins="sturges") from the values' min, max and count alone (so ingest needn't
    read the reference's values)."""
    first, last = float(first), float(last)
    if first == last:
        return np.linspace(first - 0.5, last + 0.5, 2)
    width = (last - first) / (np.log2(n) + 1.0)
    return np.linspace(first, last, int(np.ceil((last - first) / width)) + 1)


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts on [-inf, e0), [e0, e1), …, [e_n-1, e_n], (e_n, inf): np.histogram's bins plus an open bin each side."""
    index = np.searchsorted(edges, values, side="right")
    index[values == edges[-1]] = len(edges) - 1  # the last inner bin is closed, as in np.histogram
    return np.bincount(index, minlength=len(edges) + 1).astype(np.int64)


def _sketch(k: int, payload: bytes | None = None):
    from datasketches import kll_doubles_sketch

    return kll_doubles_sketch.deserialize(payload) if payload else kll_doubles_sketch(k)


@dataclass
class NumericSummary:
    edges: np.ndarray | None  # the reference's bin edges (None: the reference has no values)
    k: int
    count: int = 0
    nulls: int = 0
    hist: np.ndarray | None = None
    values: dict | None = field(default_factory=dict)  # exact counts while few distinct values, then None
    sketch: object = None

    @classmethod
    def of(cls, raw: np.ndarray, *, edges: np.ndarray | None, k: int) -> "NumericSummary":
        raw = np.asarray(raw, dtype=np.float64)
        finite = raw[np.isfinite(raw)]
        out = cls(edges=edges, k=k, count=int(finite.size), nulls=int(raw.size - finite.size), sketch=_sketch(k))
        out.hist = bin_counts(finite, edges) if edges is not None else None
        out.values = None
        if np.unique(finite[:4096]).size <= MAX_EXACT_VALUES:  # a cheap look first: most columns have many values
            uniq, counts = np.unique(finite, return_counts=True)
            out.values = dict(zip(uniq.tolist(), counts.tolist())) if uniq.size <= MAX_EXACT_VALUES else None
        if finite.size:
            out.sketch.update(finite)
        return out

    def merge(self, other: "NumericSummary") -> "NumericSummary":
        if (self.edges is None) != (other.edges is None) or (self.edges is not None
                                                            and not np.array_equal(self.edges, other.edges)):
            raise ValueError("Summaries on different reference bins cannot be merged.")
        self.count += other.count
        self.nulls += other.nulls
        if self.hist is not None:
            self.hist = self.hist + other.hist
        if self.values is not None and other.values is not None:
            merged = dict(self.values)
            for value, n in other.values.items():
                merged[value] = merged.get(value, 0) + n
            self.values = merged if len(merged) <= MAX_EXACT_VALUES else None
        else:
            self.values = None
        self.sketch.merge(other.sketch)
        return self

    def steps(self) -> tuple[np.ndarray, np.ndarray]:
        """The current distribution as a step CDF: sorted items and the cumulative share at each. Exact with
        value counts, else the sketch's retained items with their weights."""
        if self.values is not None:
            items = np.array(sorted(self.values), dtype=np.float64)
            weights = np.array([self.values[v] for v in items.tolist()], dtype=np.float64)
        else:  # the sketch's own CDF at its retained items (the weights its iterator yields are not reliable after
            # a merge: all 1 in datasketches 5.2, measured)
            items = np.unique(np.fromiter((item for item, _ in self.sketch), dtype=np.float64))
            return items, np.asarray(self.sketch.get_cdf(items.tolist(), True)[:-1], dtype=np.float64)
        return items, np.cumsum(weights) / weights.sum()

    def cdf(self, points: np.ndarray) -> np.ndarray:
        """The share of current values ≤ x at each point. Exact with value counts. Else the sketch's step CDF
        clipped into what the histogram says for certain: at every reference bin edge the share is exact (the bin
        counts), so inside a bin the CDF lies between the shares at its two edges. The true CDF lies there too, so
        clipping never moves the estimate away from it, and the error stays within min(ε, the bin's share) instead
        of ε everywhere, which on a long tail times a wide bin was most of the distance (lognormal, k=200: a 0.011
        Wasserstein came out anywhere in 0.018–0.115 from the bare sketch, 0.013–0.024 clipped; 20 sketches)."""
        items, cum = self.steps()
        step = _step_cdf(items, cum, points)
        if self.values is not None or self.edges is None:
            return step
        # Exact shares at the edges, in bin_counts' convention: P(v < e_i), and P(v ≤ e_last) at the last edge.
        exact = np.concatenate(([0.0], np.cumsum(self.hist)[:-1] / self.count, [1.0]))
        segment = np.searchsorted(self.edges, points, side="right")  # 0: below the first edge, len(edges): above
        return np.clip(step, exact[segment], exact[segment + 1])

    def cdf_error(self, rank_error: float) -> np.ndarray:
        """Per bin (the open ones included), how far cdf() can be off inside it."""
        return np.minimum(rank_error, self.hist / self.count)

    def to_dict(self) -> dict:
        return {"kind": NUMERIC, "k": self.k, "count": self.count, "nulls": self.nulls,
                "edges": None if self.edges is None else self.edges.astype(np.float64).tobytes(),
                "hist": None if self.hist is None else self.hist.tobytes(),
                "values": None if self.values is None else [list(self.values), list(self.values.values())],
                "sketch": self.sketch.serialize()}

    @classmethod
    def from_dict(cls, d: dict) -> "NumericSummary":
        return cls(edges=None if d["edges"] is None else np.frombuffer(d["edges"], dtype=np.float64),
                   k=d["k"], count=d["count"], nulls=d["nulls"],
                   hist=None if d["hist"] is None else np.frombuffer(d["hist"], dtype=np.int64).copy(),
                   values=None if d["values"] is None else dict(zip(*d["values"])), sketch=_sketch(d["k"], d["sketch"]))


@dataclass
class CategoricalSummary:
    counts: dict = field(default_factory=dict)
    nulls: int = 0

    @classmethod
    def of(cls, values) -> "CategoricalSummary":
        import pyarrow as pa
        import pyarrow.compute as pc

        array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
        array = pc.cast(array, pa.string())
        counts = pc.value_counts(array.drop_null() if hasattr(array, "drop_null") else array)
        return cls(counts={v.as_py(): n.as_py() for v, n in zip(counts.field("values"), counts.field("counts"))},
                   nulls=int(array.null_count))

    def merge(self, other: "CategoricalSummary") -> "CategoricalSummary":
        merged = dict(self.counts)
        for value, n in other.counts.items():
            merged[value] = merged.get(value, 0) + n
        self.counts, self.nulls = merged, self.nulls + other.nulls
        return self

    def to_dict(self) -> dict:
        return {"kind": CATEGORICAL, "counts": self.counts, "nulls": self.nulls}

    @classmethod
    def from_dict(cls, d: dict) -> "CategoricalSummary":
        return cls(counts=dict(d["counts"]), nulls=d["nulls"])


@dataclass
class Summary:
    """Every column of some rows (one partition, or a merged window)."""

    rows: int = 0
    columns: dict = field(default_factory=dict)

    def merge(self, other: "Summary") -> "Summary":
        self.rows += other.rows
        for name, column in other.columns.items():
            mine = self.columns.get(name)
            self.columns[name] = column if mine is None else mine.merge(column)
        return self

    def to_bytes(self) -> bytes:
        return msgspec.msgpack.encode({"format": FORMAT, "rows": self.rows,
                                       "columns": {n: c.to_dict() for n, c in self.columns.items()}})

    @classmethod
    def from_bytes(cls, payload: bytes) -> "Summary":
        d = msgspec.msgpack.decode(bytes(payload))
        if d.get("format") != FORMAT:
            raise ValueError(f"Summary format {d.get('format')} is not {FORMAT}; summarize the partition again.")
        return cls(rows=d["rows"], columns={n: (NumericSummary if c["kind"] == NUMERIC else CategoricalSummary).from_dict(c)
                                            for n, c in d["columns"].items()})


def summarize(table, *, kinds: dict[str, str], edges: dict[str, np.ndarray | None], k: int) -> Summary:
    """The Summary of a pyarrow table's rows: `kinds` maps column names to numeric/categorical (a column the table
    lacks counts as all null), `edges` gives each numeric column's reference bins."""
    import pyarrow as pa

    summary = Summary(rows=table.num_rows)
    for name, kind in kinds.items():
        column = table.column(name) if name in table.column_names else pa.nulls(table.num_rows)
        if kind == NUMERIC:
            raw = column.cast(pa.float64()).to_numpy(zero_copy_only=False) if column.null_count < len(column) \
                else np.full(len(column), np.nan)
            summary.columns[name] = NumericSummary.of(raw, edges=edges.get(name), k=k)
        else:
            summary.columns[name] = CategoricalSummary.of(column)
    return summary


# --- drift from a summary -------------------------------------------------------------------------------------

def _ref_cdf(ref_sorted: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.searchsorted(ref_sorted, points, side="right") / ref_sorted.size


def _step_cdf(items: np.ndarray, cum: np.ndarray, points: np.ndarray) -> np.ndarray:
    index = np.searchsorted(items, points, side="right")
    return np.where(index > 0, cum[np.maximum(index - 1, 0)], 0.0)


def ks_statistic(ref_sorted: np.ndarray, cur: NumericSummary) -> float:
    """sup |F_ref − F_cur| over every point where either step function jumps (where the supremum is reached)."""
    items, _ = cur.steps()
    points = np.concatenate((ref_sorted, items, () if cur.edges is None else cur.edges))
    return float(np.max(np.abs(_ref_cdf(ref_sorted, points) - cur.cdf(points))))


def ks_p_value(d: float, n_ref: int, n_cur: int) -> float:
    """scipy's ks_2samp two-sided p-value in its asymptotic mode (Smirnov), which scipy uses above 10,000 rows."""
    from scipy.stats import kstwo

    m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
    return float(kstwo.sf(d, np.round(m * n / (m + n))))


@functools.lru_cache(maxsize=256)
def ks_critical(n_ref: int, n_cur: int, alpha: float) -> float:
    """The KS statistic whose ks_p_value is alpha (once per window's sizes: kstwo.sf near it takes ~0.5 s a call
    at 1M rows, kstwo.isf once)."""
    from scipy.stats import kstwo

    m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
    return float(kstwo.isf(alpha, np.round(m * n / (m + n))))


def wasserstein(ref_sorted: np.ndarray, cur: NumericSummary) -> float:
    """∫ |F_ref − F_cur| dx over the merged jump points (scipy's wasserstein_distance, with the current side's CDF
    taken from the summary)."""
    items, _ = cur.steps()
    if cur.values is None and cur.edges is not None:  # where the pinned CDF bends
        items = np.union1d(items, cur.edges)
    points = np.insert(ref_sorted, np.searchsorted(ref_sorted, items), items)  # a merge of two sorted runs
    left = points[:-1]
    return float(np.sum(np.abs(_ref_cdf(ref_sorted, left) - cur.cdf(left)) * np.diff(points)))


def wasserstein_error(cur: NumericSummary, error: float) -> float:
    """The most the sketch's Wasserstein distance can be off: each bin's CDF error times its width (the open bins
    reach out to the current min and max)."""
    first, last = float(cur.sketch.get_min_value()), float(cur.sketch.get_max_value())
    bounds = np.concatenate(([min(first, cur.edges[0])], cur.edges, [max(last, cur.edges[-1])]))
    return float(np.sum(cur.cdf_error(error) * np.diff(bounds)))


def _ref_values(ref_sorted: np.ndarray) -> dict | None:
    uniq, counts = np.unique(ref_sorted, return_counts=True)
    return dict(zip(uniq.tolist(), counts.tolist())) if uniq.size <= 20 else None


def numeric_drift(column: str, ref_sorted: np.ndarray, cur: NumericSummary, *, method: str = "auto",
                  threshold: float | None = None) -> drift.ColumnResult:
    """drift.numeric_drift with the current side given as a summary (see the module docstring for exactness)."""
    if ref_sorted.size == 0:
        raise drift.NotEnoughData(f"Column '{column}' has no values in the reference data.")
    if cur.count == 0:
        raise drift.NotEnoughData(f"Column '{column}' has no values in the current window (empty or all null).")
    ref_values = _ref_values(ref_sorted)
    if method == "auto":
        distinct = len(set(ref_values or ()) | set(cur.values or ())) if ref_values is not None and \
            cur.values is not None else 6  # more than 5: the only count the choice looks at
        method = drift.default_method(kind=NUMERIC, reference_count=ref_sorted.size, distinct=distinct)
    if method not in drift.METHODS:
        raise ValueError(f"Unknown drift method '{method}'.")
    threshold = drift.METHODS[method][0] if threshold is None else threshold
    notes = ["constant in the reference data"] if ref_sorted[0] == ref_sorted[-1] else []
    exact = cur.values is not None
    error = rank_error(cur.k)
    if method == "wasserstein":
        norm = max(float(np.std(ref_sorted)), 0.001)
        score = wasserstein(ref_sorted, cur) / norm
        if not exact:
            bound = wasserstein_error(cur, error) if cur.edges is not None else \
                error * float(cur.sketch.get_max_value() - cur.sketch.get_min_value())
            notes.append(f"sketch: within ±{bound / norm:.3g} of the exact distance")
            uncertain = drift._verdict(method, max(score - bound / norm, 0.0), threshold) != \
                drift._verdict(method, score + bound / norm, threshold)
    elif method == "ks":
        d = ks_statistic(ref_sorted, cur)
        score = ks_p_value(d, ref_sorted.size, cur.count)
        if not exact:
            bound = error if cur.edges is None else float(cur.cdf_error(error).max())
            notes.append(f"sketch: KS statistic {d:.4g}, within ±{bound:.2g} of the exact one")
            critical = ks_critical(ref_sorted.size, cur.count, threshold)  # drift where D ≥ it
            uncertain = (d - bound >= critical) != (d + bound >= critical)
    else:
        ref_counts, cur_counts = _bins(ref_sorted, ref_values, cur, method)
        if method in ("psi", "jensenshannon"):
            ref, cur_share = drift._percents_from_counts(ref_counts, cur_counts)
            if method == "psi":
                drift._fill_zeroes(ref)
                drift._fill_zeroes(cur_share)
                score = drift._psi(ref, cur_share)
            else:
                score = drift._jensenshannon(ref, cur_share)
        else:
            score = drift._chisquare(ref_counts, cur_counts) if method == "chisquare" else drift._z_test(ref_counts, cur_counts)
    if method in ("wasserstein", "ks") and not exact and uncertain:
        # Where the exact score could lie, the threshold is crossed: say so rather than pass the verdict off as
        # certain (KS at 1M × 1M rows: ε is the size of the critical statistic itself).
        notes.append("sketch: the threshold lies within the error bound, so exact mode could give the other verdict")
    return drift.ColumnResult(column=column, kind=NUMERIC, method=method, score=float(score), threshold=threshold,
                              drifted=bool(drift._verdict(method, score, threshold)),
                              reference_count=int(ref_sorted.size), current_count=cur.count,
                              score_kind=drift.METHODS[method][1], notes=notes)


def _bins(ref_sorted, ref_values, cur: NumericSummary, method: str) -> tuple[dict, dict]:
    """Counts per value (a reference with ≤ 20 values, and exact current counts: Evidently's own binning), else per
    bin of the reference's histogram (bins empty on both sides left out)."""
    per_value = ref_values is not None and cur.values is not None
    if per_value or (method in ("chisquare", "z") and cur.values is not None):
        return ref_values or drift._counts_from_sorted(ref_sorted), dict(cur.values)
    ref_hist = bin_counts(ref_sorted, cur.edges)
    return ({i: int(n) for i, n in enumerate(ref_hist) if n or cur.hist[i]},
            {i: int(n) for i, n in enumerate(cur.hist) if n or ref_hist[i]})


def distribution(ref_sorted: np.ndarray, cur: NumericSummary) -> dict:
    """Reference and current shares on the reference's bins, for the charts; the open bins become [current min,
    first edge) and (last edge, current max] when the current window has values there."""
    if ref_sorted.size == 0 or cur.count == 0 or cur.edges is None:
        return {}
    ref = bin_counts(ref_sorted, cur.edges) / ref_sorted.size
    current = cur.hist / cur.count
    edges = cur.edges.tolist()
    keep = slice(1 if current[0] == 0 else 0, len(current) - (1 if current[-1] == 0 else 0))
    if current[0]:
        edges.insert(0, float(cur.sketch.get_min_value()))
    if current[-1]:
        edges.append(float(cur.sketch.get_max_value()))
    return {"edges": np.round(edges, 6).tolist(), "reference": ref[keep].round(6).tolist(),
            "current": current[keep].round(6).tolist()}


def window_drift(summary: Summary, *, specs: list, reference: dict[str, dict]):
    """engine.window_drift's result for a window given as its merged summary (sketch mode)."""
    from .engine import PREDICTION, WindowResult

    result = WindowResult(current_rows=summary.rows)
    for spec in specs:
        key = PREDICTION if spec.role == "prediction" else spec.name
        column, prepared = summary.columns.get(key), reference.get(spec.name)
        try:
            if prepared is None or prepared["kind"] != spec.kind or column is None or \
                    isinstance(column, NumericSummary) != (spec.kind == NUMERIC):
                raise drift.NotEnoughData(f"Column '{spec.name}' has no {spec.kind} summary or reference prepared; "
                                          f"save the reference schema again to prepare it.")
            if spec.kind == NUMERIC:
                res = numeric_drift(spec.name, prepared["sorted"], column, method=spec.method, threshold=spec.threshold)
                dist = distribution(prepared["sorted"], column)
            else:
                res = drift.categorical_drift(spec.name, prepared["counts"], column.counts, method=spec.method,
                                              threshold=spec.threshold)
                dist = drift.category_shares(prepared["counts"], column.counts)
        except drift.NotEnoughData as exc:
            result.failures[spec.name] = str(exc)
            continue
        result.results.append((spec, res))
        result.null_counts[key] = column.nulls
        result.distributions[spec.name] = dist
    return result
