"""Column drift statistics computed the way Evidently 0.7 computes them, on columnar arrays.

Evidently's `DataDriftPreset` runs, per column, one of the stat tests in
`evidently.legacy.calculations.stattests` on pandas Series. Most of its time goes into pandas
work around the test (correlations, histograms, the rendering model), not the statistic. Here each
statistic is the same formula on numpy arrays:

- numeric columns arrive as *sorted* float64 arrays with NaN/±inf removed (what Evidently drops
  before testing); a reference is stored sorted once, so a run only sorts the current window;
- categorical columns arrive as value counts ({value: count}), which PostgreSQL computes with
  GROUP BY, because every categorical test (chi², Z, Jensen–Shannon, PSI) only needs counts.

The method choice (`auto`) and the thresholds and verdict rules are Evidently's. The tests in
tests/monitoring/test_drift_equivalence.py compare scores and verdicts with Evidently itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NUMERIC = "numeric"
CATEGORICAL = "categorical"

# method -> (default threshold, kind of score); Evidently's StatTest defaults.
METHODS: dict[str, tuple[float, str]] = {
    "wasserstein": (0.1, "distance"),
    "ks": (0.05, "p_value"),
    "psi": (0.1, "distance"),
    "jensenshannon": (0.1, "distance"),
    "chisquare": (0.05, "p_value"),
    "z": (0.05, "p_value"),
}
NUMERIC_METHODS = ("auto", "wasserstein", "ks", "psi", "jensenshannon")
CATEGORICAL_METHODS = ("auto", "chisquare", "z", "jensenshannon", "psi")
# Evidently's display names, used to hand our choice to an Evidently report unchanged.
DISPLAY_NAMES = {
    "wasserstein": "Wasserstein distance (normed)",
    "ks": "K-S p_value",
    "psi": "PSI",
    "jensenshannon": "Jensen-Shannon distance",
    "chisquare": "chi-square p_value",
    "z": "Z-test p_value",
}


class NotEnoughData(ValueError):
    """A column has no usable values on one side (empty window, all-null column)."""


@dataclass
class ColumnResult:
    column: str
    kind: str
    method: str
    score: float
    threshold: float
    drifted: bool
    reference_count: int
    current_count: int
    score_kind: str = "distance"
    notes: list[str] = field(default_factory=list)


def clean_numeric(values: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
    """Drop NaN and ±inf (Evidently replaces inf by NaN, then drops NaN) and sort.

    One sorted copy (none with `overwrite` and a writable float64 array: it is sorted in place), then a
    slice: numpy sorts -inf first and +inf then NaN last, so the finite values are the run between two
    binary searches (no mask pass, no second copy)."""
    values = np.asarray(values, dtype=np.float64)
    if overwrite and values.flags.writeable:
        values.sort(kind="quicksort")
    else:
        values = np.sort(values, kind="quicksort")
    lo = int(np.searchsorted(values, -np.inf, side="right"))
    hi = int(np.searchsorted(values, np.inf, side="left"))  # NaN compares above +inf in numpy's order
    return values[lo:hi]


def _distinct_sorted(values: np.ndarray) -> int:
    if values.size == 0:
        return 0
    return int(np.count_nonzero(np.diff(values))) + 1


def _distinct_union_sorted(ref: np.ndarray, cur: np.ndarray, *, at_most: int) -> int:
    """Number of distinct values in ref ∪ cur, stopping early once it exceeds `at_most`."""
    n = _distinct_sorted(ref)
    if n > at_most:
        return n
    return len(np.union1d(np.unique(ref), np.unique(cur)))


def default_method(*, kind: str, reference_count: int, distinct: int) -> str:
    """Evidently's `_get_default_stattest` (reference size after dropping NaN, distinct values of both)."""
    if reference_count <= 1000:
        if kind == NUMERIC:
            if distinct <= 5:
                return "chisquare" if distinct > 2 else "z"
            return "ks"
        return "chisquare" if distinct > 2 else "z"
    if kind == NUMERIC:
        return "jensenshannon" if distinct <= 5 else "wasserstein"
    return "jensenshannon"


def _vecdot(a, b) -> float:
    # scipy's wasserstein_distance sums with np.vecdot (numpy >= 2); the same call keeps results bit-identical.
    if hasattr(np, "vecdot"):
        return float(np.vecdot(a, b))
    return float(np.sum(a * b))  # pragma: no cover - numpy 1.x, as scipy does there


def wasserstein_sorted(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """scipy.stats.wasserstein_distance for inputs that are already sorted, with the same terms and sum.

    scipy finds each merged value's CDF position with two binary searches; here a stable argsort of the
    two sorted runs (a linear merge) gives the origin of each merged value and a cumulative count gives
    the positions. Inside a run of equal values the count differs from scipy's 'right' search, but
    there the delta to the next value is 0, so every term of the sum is identical. Intermediate arrays
    are written into buffers no longer needed (same values; fewer fresh 16 MB arrays to fault in)."""
    n1, n2 = ref_sorted.size, cur_sorted.size
    size = n1 + n2
    both = np.concatenate((ref_sorted, cur_sorted))
    order = np.argsort(both, kind="stable")
    merged = np.take(both, order)
    deltas = np.subtract(merged[1:], merged[:-1], out=both[:-1])  # np.diff(merged)
    u_idx = np.cumsum(order[:-1] < n1, out=order[:-1])
    v_idx = np.arange(1, size)
    np.subtract(v_idx, u_idx, out=v_idx)
    terms = np.divide(u_idx, n1, out=merged[:-1])
    np.subtract(terms, v_idx / n2, out=terms)
    return _vecdot(np.abs(terms, out=terms), deltas)


def _cdf_differences_sorted(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> np.ndarray:
    """ECDF(ref) − ECDF(cur) at each distinct value of ref ∪ cur, computed as ks_2samp computes it at every value
    (searchsorted 'right' counts / n1 − counts / n2), from one linear merge of the two sorted runs.

    ks_2samp evaluates at all n1 + n2 values; a value repeated k times gives k equal differences, so the
    distinct values give the same set of differences and the same min and max (the statistic). The counts
    at a value are the merged position of its last copy: ref values up to there, and the rest from cur.
    Intermediate arrays reuse buffers no longer needed (same values, fewer fresh arrays)."""
    n1, n2 = ref_sorted.size, cur_sorted.size
    size = n1 + n2
    both = np.concatenate((ref_sorted, cur_sorted))
    order = np.argsort(both, kind="stable")  # timsort: one merge of the two sorted runs
    merged = np.take(both, order)
    from_ref = np.cumsum(order < n1, out=order)  # ref values up to each merged position
    last_copy = np.empty(size, dtype=bool)
    np.not_equal(merged[1:], merged[:-1], out=last_copy[:-1])
    last_copy[-1] = True
    if last_copy.all():  # no value repeats: every position is a last copy
        cdf_ref, cdf_cur = from_ref, np.arange(1, size + 1)
    else:
        last = np.flatnonzero(last_copy)
        cdf_ref, cdf_cur = from_ref[last], np.add(last, 1, out=last)
    del last_copy
    np.subtract(cdf_cur, cdf_ref, out=cdf_cur)
    out = np.divide(cdf_ref, n1, out=both[:cdf_ref.size])
    return np.subtract(out, np.divide(cdf_cur, n2, out=merged[:cdf_cur.size]), out=out)


KS_EXACT_MAX_N = 10_000  # scipy's MAX_AUTO_N: ks_2samp's 'auto' computes the exact p-value up to this size


def ks_pvalue_sorted(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """scipy.stats.ks_2samp(ref, cur).pvalue (two-sided, method 'auto') for inputs that are already sorted.

    Large samples take scipy's asymptotic branch with the same statistic (the same CDF counts, divided and
    subtracted the same way, see _cdf_differences_sorted) and the same `kstwo.sf` call, so the p-value is
    bit-identical, without ks_2samp's two re-sorts, its NaN-policy wrapper's copies and its 2×(n1+n2)
    binary searches. Small samples (exact p-value) go to ks_2samp itself."""
    n1, n2 = ref_sorted.size, cur_sorted.size
    if max(n1, n2) <= KS_EXACT_MAX_N:
        from scipy.stats import ks_2samp

        return float(ks_2samp(ref_sorted, cur_sorted)[1])
    from scipy.stats import kstwo

    cddiffs = _cdf_differences_sorted(ref_sorted, cur_sorted)
    d = max(float(np.clip(-cddiffs.min(), 0, 1)), float(cddiffs.max()))
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return float(np.clip(kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))


def _counts_from_sorted(values: np.ndarray) -> dict:
    """np.unique(values, return_counts=True) as a dict, for sorted values: runs of equal values, no re-sort."""
    if values.size == 0:
        return {}
    starts = np.flatnonzero(values[1:] != values[:-1]) + 1
    counts = np.diff(starts, prepend=0, append=values.size)
    firsts = values[np.concatenate(([0], starts))]
    return {float(k): int(c) for k, c in zip(firsts, counts)}


def sturges_edges_sorted(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> np.ndarray:
    """np.histogram_bin_edges(np.concatenate((ref, cur)), bins="sturges") for sorted, non-empty, finite inputs,
    without the concatenation: numpy's steps (outer edges from the joint min and max, widened by ±0.5 when
    equal; width = peak-to-peak / (log2(size) + 1); ceil(range / width) bins; linspace) on the two ends."""
    first, last = min(ref_sorted[0], cur_sorted[0]), max(ref_sorted[-1], cur_sorted[-1])
    width = np.subtract(last, first) / (np.log2(ref_sorted.size + cur_sorted.size) + 1.0)
    if first == last:
        first, last = first - 0.5, last + 0.5
    bins = int(np.ceil(np.subtract(last, first) / width)) if width else 1
    return np.linspace(first, last, bins + 1, endpoint=True, dtype=np.result_type(first, last, ref_sorted))


def counts_in_bins_sorted(values_sorted: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """np.histogram(values, edges)[0] for sorted values: with explicit edges numpy sorts the data and counts
    by binary search ([edge, next) per bin, the last bin closed), which on sorted data is the search alone."""
    return np.diff(np.concatenate((np.searchsorted(values_sorted, edges[:-1], side="left"),
                                   np.searchsorted(values_sorted, edges[-1:], side="right"))))


def _percents_from_counts(ref_counts: dict, cur_counts: dict) -> tuple[np.ndarray, np.ndarray]:
    keys = list(set(ref_counts) | set(cur_counts))
    n_ref = sum(ref_counts.values())
    n_cur = sum(cur_counts.values())
    ref = np.array([ref_counts.get(k, 0) / n_ref for k in keys])
    cur = np.array([cur_counts.get(k, 0) / n_cur for k in keys])
    return ref, cur


def _fill_zeroes(percents: np.ndarray) -> None:
    nonzero_min = min(percents[percents != 0])
    np.place(percents, percents == 0, nonzero_min / 10**6 if nonzero_min <= 0.0001 else 0.0001)


def _binned(ref_sorted: np.ndarray | None, cur_sorted: np.ndarray | None, ref_counts: dict | None,
            cur_counts: dict | None, *, numeric: bool, fill_zeroes: bool) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's get_binned_data: sturges bins over both sides for numeric columns with >20
    distinct reference values, else per-value shares."""
    if numeric and _distinct_sorted(ref_sorted) > 20:
        # Evidently: edges = np.histogram_bin_edges(pd.concat([ref, cur]), "sturges"), np.histogram per side;
        # the same edges and counts from the sorted arrays' ends and binary searches (equality tested).
        bins = sturges_edges_sorted(ref_sorted, cur_sorted)
        ref = counts_in_bins_sorted(ref_sorted, bins) / len(ref_sorted)
        cur = counts_in_bins_sorted(cur_sorted, bins) / len(cur_sorted)
    else:
        if numeric:
            ref_counts, cur_counts = _counts_from_sorted(ref_sorted), _counts_from_sorted(cur_sorted)
        ref, cur = _percents_from_counts(ref_counts, cur_counts)
    if fill_zeroes:
        _fill_zeroes(ref)
        _fill_zeroes(cur)
    return ref, cur


def _chisquare(ref_counts: dict, cur_counts: dict) -> float:
    from scipy.stats import chisquare

    keys = list(set(ref_counts) | set(cur_counts))
    k_norm = sum(cur_counts.values()) / sum(ref_counts.values())
    f_exp = [ref_counts.get(k, 0) * k_norm for k in keys]
    f_obs = [cur_counts.get(k, 0) for k in keys]
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(chisquare(f_obs, f_exp)[1])


def _z_test(ref_counts: dict, cur_counts: dict) -> float:
    from scipy.stats import norm

    if len(ref_counts) == 1 and len(cur_counts) == 1 and set(ref_counts) == set(cur_counts):
        return 1.0
    first = sorted(set(ref_counts) | set(cur_counts))[0]
    n1, n2 = sum(ref_counts.values()), sum(cur_counts.values())
    p1 = float(n1 - ref_counts.get(first, 0)) / n1
    p2 = float(n2 - cur_counts.get(first, 0)) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - norm.cdf(np.abs(z))))


def _verdict(method: str, score: float, threshold: float) -> bool:
    if method == "ks":
        return score <= threshold
    if METHODS[method][1] == "p_value":
        return score < threshold
    return score >= threshold


def numeric_drift(column: str, ref_sorted: np.ndarray, cur_sorted: np.ndarray, *, method: str = "auto",
                  threshold: float | None = None) -> ColumnResult:
    """Drift of a numeric column; both arrays sorted and free of NaN/inf (see clean_numeric)."""
    if ref_sorted.size == 0:
        raise NotEnoughData(f"Column '{column}' has no values in the reference data.")
    if cur_sorted.size == 0:
        raise NotEnoughData(f"Column '{column}' has no values in the current window (empty or all null).")
    notes = []
    if method == "auto":
        distinct = _distinct_union_sorted(ref_sorted, cur_sorted, at_most=5)
        method = default_method(kind=NUMERIC, reference_count=ref_sorted.size, distinct=distinct)
    if method not in METHODS:
        raise ValueError(f"Unknown drift method '{method}'.")
    threshold = METHODS[method][0] if threshold is None else threshold
    if ref_sorted[0] == ref_sorted[-1]:
        notes.append("constant in the reference data")
    if method == "wasserstein":
        norm = max(float(np.std(ref_sorted)), 0.001)
        score = wasserstein_sorted(ref_sorted, cur_sorted) / norm
    elif method == "ks":
        score = ks_pvalue_sorted(ref_sorted, cur_sorted)
    elif method in ("psi", "jensenshannon"):
        ref, cur = _binned(ref_sorted, cur_sorted, None, None, numeric=True, fill_zeroes=method == "psi")
        score = _psi(ref, cur) if method == "psi" else _jensenshannon(ref, cur)
    else:  # chisquare / z on a numeric column with few values (Evidently's auto choice for small data)
        ref_counts, cur_counts = _counts_from_sorted(ref_sorted), _counts_from_sorted(cur_sorted)
        score = _chisquare(ref_counts, cur_counts) if method == "chisquare" else _z_test(ref_counts, cur_counts)
    return ColumnResult(column=column, kind=NUMERIC, method=method, score=float(score), threshold=threshold,
                        drifted=bool(_verdict(method, score, threshold)), reference_count=int(ref_sorted.size),
                        current_count=int(cur_sorted.size), score_kind=METHODS[method][1], notes=notes)


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def _jensenshannon(ref: np.ndarray, cur: np.ndarray) -> float:
    from scipy.spatial import distance

    return float(distance.jensenshannon(ref, cur, None))


def categorical_drift(column: str, ref_counts: dict, cur_counts: dict, *, method: str = "auto",
                      threshold: float | None = None) -> ColumnResult:
    """Drift of a categorical column from value counts (None/NaN keys must already be left out)."""
    n_ref, n_cur = sum(ref_counts.values()), sum(cur_counts.values())
    if n_ref == 0:
        raise NotEnoughData(f"Column '{column}' has no values in the reference data.")
    if n_cur == 0:
        raise NotEnoughData(f"Column '{column}' has no values in the current window (empty or all null).")
    if method == "auto":
        distinct = len(set(ref_counts) | set(cur_counts))
        method = default_method(kind=CATEGORICAL, reference_count=n_ref, distinct=distinct)
    if method not in METHODS or method in ("wasserstein", "ks"):
        raise ValueError(f"Method '{method}' does not apply to categorical column '{column}'.")
    threshold = METHODS[method][0] if threshold is None else threshold
    notes = []
    unseen = sorted(str(k) for k in set(cur_counts) - set(ref_counts))
    if unseen:
        notes.append("categories not in the reference: " + ", ".join(unseen[:10]) + ("…" if len(unseen) > 10 else ""))
    if len(ref_counts) == 1:
        notes.append("constant in the reference data")
    if method == "chisquare":
        score = _chisquare(ref_counts, cur_counts)
    elif method == "z":
        score = _z_test(ref_counts, cur_counts)
    else:
        ref, cur = _binned(None, None, ref_counts, cur_counts, numeric=False, fill_zeroes=method == "psi")
        score = _psi(ref, cur) if method == "psi" else _jensenshannon(ref, cur)
    return ColumnResult(column=column, kind=CATEGORICAL, method=method, score=float(score), threshold=threshold,
                        drifted=bool(_verdict(method, score, threshold)), reference_count=n_ref,
                        current_count=n_cur, score_kind=METHODS[method][1], notes=notes)


def histogram(ref_sorted: np.ndarray, cur_sorted: np.ndarray, bins: int = 30) -> dict:
    """Shares per bin over a common range, for the reference-vs-current chart (both arrays sorted)."""
    if ref_sorted.size == 0 or cur_sorted.size == 0:
        return {}
    lo, hi = min(ref_sorted[0], cur_sorted[0]), max(ref_sorted[-1], cur_sorted[-1])
    if lo == hi:
        hi = lo + 1
    edges = np.linspace(lo, hi, bins + 1)
    ref = counts_in_bins_sorted(ref_sorted, edges) / ref_sorted.size
    cur = counts_in_bins_sorted(cur_sorted, edges) / cur_sorted.size
    return {"edges": edges.round(6).tolist(), "reference": ref.round(6).tolist(), "current": cur.round(6).tolist()}


def category_shares(ref_counts: dict, cur_counts: dict, limit: int = 30) -> dict:
    n_ref, n_cur = max(sum(ref_counts.values()), 1), max(sum(cur_counts.values()), 1)
    keys = sorted(set(ref_counts) | set(cur_counts), key=lambda k: -(ref_counts.get(k, 0) + cur_counts.get(k, 0)))
    keys = keys[:limit]
    return {"categories": [str(k) for k in keys], "reference": [ref_counts.get(k, 0) / n_ref for k in keys],
            "current": [cur_counts.get(k, 0) / n_cur for k in keys]}
