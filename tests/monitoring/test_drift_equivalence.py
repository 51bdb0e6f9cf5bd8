"""Our column statistics give Evidently's method, score and verdict, column by column."""
import math

import numpy as np
import pandas as pd
import pytest

from apps.monitoring.drift import categorical_drift, clean_numeric, ks_pvalue_sorted, numeric_drift

from .evidently_ref import evidently_drift


def _ours(reference, current, numeric, categorical, num_method="auto", cat_method="auto"):
    out = {}
    for col in numeric:
        r = numeric_drift(col, clean_numeric(reference[col].to_numpy(float)), clean_numeric(current[col].to_numpy(float)),
                          method=num_method)
        out[col] = r
    for col in categorical:
        r = categorical_drift(col, reference[col].dropna().value_counts().to_dict(),
                              current[col].dropna().value_counts().to_dict(), method=cat_method)
        out[col] = r
    return out


def _frames(n_ref, n_cur, drift: bool, seed=0):
    rng = np.random.default_rng(seed)
    shift = 0.6 if drift else 0.0
    ref = pd.DataFrame({
        "amount": rng.lognormal(3, 1, n_ref),
        "age": rng.normal(40, 10, n_ref),
        "small_int": rng.integers(0, 4, n_ref).astype(float),
        "binary_num": rng.integers(0, 2, n_ref).astype(float),
        "with_nulls": np.where(rng.random(n_ref) < 0.1, np.nan, rng.normal(0, 1, n_ref)),
        "country": rng.choice(["de", "fr", "it", "es"], n_ref, p=[0.4, 0.3, 0.2, 0.1]),
        "channel": rng.choice(["web", "app"], n_ref, p=[0.7, 0.3]),
    })
    cur = pd.DataFrame({
        "amount": rng.lognormal(3 + shift, 1, n_cur),
        "age": rng.normal(40 + 10 * shift, 10, n_cur),
        "small_int": rng.integers(0, 4, n_cur).astype(float) if not drift else rng.choice([0, 1, 2, 3], n_cur, p=[0.7, 0.1, 0.1, 0.1]).astype(float),
        "binary_num": rng.integers(0, 2, n_cur).astype(float),
        "with_nulls": np.where(rng.random(n_cur) < 0.3, np.nan, rng.normal(shift, 1, n_cur)),
        "country": rng.choice(["de", "fr", "it", "es"], n_cur, p=[0.1, 0.2, 0.3, 0.4] if drift else [0.4, 0.3, 0.2, 0.1]),
        "channel": rng.choice(["web", "app"], n_cur, p=[0.3, 0.7] if drift else [0.7, 0.3]),
    })
    return ref, cur


NUMERIC = ["amount", "age", "small_int", "binary_num", "with_nulls"]
CATEGORICAL = ["country", "channel"]


def _assert_same(ours, theirs):
    assert set(ours) == set(theirs)
    for col, (method, score, drifted) in theirs.items():
        mine = ours[col]
        assert mine.method == method, col
        assert math.isclose(mine.score, score, rel_tol=1e-9, abs_tol=1e-12), (col, mine.score, score)
        assert mine.drifted == drifted, col


@pytest.mark.parametrize("drift", [False, True], ids=["no-drift", "drift"])
@pytest.mark.parametrize("n_ref,n_cur", [(3000, 2000), (600, 400)], ids=["large", "small"])
def test_auto_methods_match_evidently(drift, n_ref, n_cur):
    ref, cur = _frames(n_ref, n_cur, drift)
    theirs = evidently_drift(ref, cur, numeric=NUMERIC, categorical=CATEGORICAL)
    ours = _ours(ref, cur, NUMERIC, CATEGORICAL)
    _assert_same(ours, theirs)
    drifted = {c for c, r in ours.items() if r.drifted}
    if drift:
        assert {"amount", "age", "country", "channel"} <= drifted
    else:
        assert not drifted & {"amount", "age", "country", "channel"}


@pytest.mark.parametrize("num_method,cat_method", [("ks", "chisquare"), ("psi", "psi"), ("jensenshannon", "jensenshannon"),
                                                   ("wasserstein", "z")])
@pytest.mark.parametrize("drift", [False, True], ids=["no-drift", "drift"])
def test_explicit_methods_match_evidently(num_method, cat_method, drift):
    ref, cur = _frames(2500, 1500, drift, seed=3)
    cats = CATEGORICAL if cat_method != "z" else ["channel"]
    theirs = evidently_drift(ref, cur, numeric=NUMERIC, categorical=cats, num_method=num_method, cat_method=cat_method)
    ours = _ours(ref, cur, NUMERIC, cats, num_method, cat_method)
    _assert_same(ours, theirs)


def test_unseen_category_and_constant_column_match_evidently():
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"const": np.full(2000, 3.0), "plan": rng.choice(["a", "b"], 2000)})
    cur = pd.DataFrame({"const": np.full(1500, 3.0), "plan": rng.choice(["a", "b", "c"], 1500)})
    theirs = evidently_drift(ref, cur, numeric=["const"], categorical=["plan"])
    ours = _ours(ref, cur, ["const"], ["plan"])
    _assert_same(ours, theirs)
    assert ours["plan"].drifted and "categories not in the reference: c" in ours["plan"].notes
    assert not ours["const"].drifted and "constant in the reference data" in ours["const"].notes


@pytest.mark.parametrize("shift", [0.0, 0.02])
def test_ks_on_sorted_arrays_is_scipys_p_value_bit_for_bit_above_the_exact_size(shift):
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(5)
    ref = clean_numeric(np.round(rng.normal(size=30_000), 2))  # ties, like rounded real data
    cur = clean_numeric(np.round(rng.normal(size=12_000) + shift, 2))
    assert ks_pvalue_sorted(ref, cur) == float(ks_2samp(ref, cur)[1])


# The sorted-input fast paths against the computations they replace, on data with ties, ±inf, NaN, a constant
# side and a side shifted past the other's range.

def _pairs():
    rng = np.random.default_rng(11)
    for n1, n2 in [(1, 1), (2, 7), (50, 3), (1200, 900), (4000, 2500)]:
        yield rng.normal(size=n1), rng.normal(size=n2) + 0.3
        yield np.round(rng.normal(50, 15, n1)), np.round(rng.normal(55, 15, n2))  # ties within and across sides
        yield rng.integers(0, 3, n1).astype(float), rng.integers(0, 5, n2).astype(float)
        yield np.round(rng.lognormal(1, 1, n1), 1), np.full(n2, 3.0)
        yield rng.uniform(0, 1, n1), rng.uniform(5, 6, n2)  # disjoint ranges
        yield np.full(n1, 2.0), np.full(n2, 2.0)  # one value on both sides: numpy widens the edges by ±0.5


def _old_clean(values):
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    values.sort()
    return values


def test_clean_numeric_sorts_and_drops_nan_and_inf_as_before():
    for ref, cur in _pairs():
        dirty = np.concatenate((ref, [np.nan, np.inf, -np.inf, np.nan], cur))
        assert np.array_equal(clean_numeric(dirty), _old_clean(dirty))
        writable = dirty.copy()
        assert np.array_equal(clean_numeric(writable, overwrite=True), _old_clean(dirty))
    assert clean_numeric(np.array([np.nan, np.inf])).size == 0 and clean_numeric(np.array([])).size == 0


def test_binning_sorted_arrays_gives_numpys_joint_sturges_edges_and_histogram_counts():
    from apps.monitoring.drift import _counts_from_sorted, counts_in_bins_sorted, sturges_edges_sorted

    for ref, cur in _pairs():
        ref, cur = clean_numeric(ref), clean_numeric(cur)
        edges = np.histogram_bin_edges(np.concatenate((ref, cur)), bins="sturges")  # what Evidently calls
        ours = sturges_edges_sorted(ref, cur)
        assert ours.dtype == edges.dtype and np.array_equal(ours, edges)
        for side in (ref, cur):
            assert np.array_equal(counts_in_bins_sorted(side, edges), np.histogram(side, edges)[0])
            chart = np.linspace(side[0] - 1, side[-1] + 0.5, 31)  # the chart's edges: values outside left out
            assert np.array_equal(counts_in_bins_sorted(side, chart), np.histogram(side, chart)[0])
            values, counts = np.unique(side, return_counts=True)
            assert _counts_from_sorted(side) == {float(v): int(c) for v, c in zip(values, counts)}


def test_ks_cdf_differences_from_the_merge_have_scipys_extremes():
    from apps.monitoring.drift import _cdf_differences_sorted

    for ref, cur in _pairs():
        ref, cur = clean_numeric(ref), clean_numeric(cur)
        everything = np.concatenate([ref, cur])  # ks_2samp's evaluation points and arithmetic
        scipy_way = np.searchsorted(ref, everything, side="right") / ref.size - \
            np.searchsorted(cur, everything, side="right") / cur.size
        ours = _cdf_differences_sorted(ref, cur)
        assert (ours.min(), ours.max()) == (scipy_way.min(), scipy_way.max())
        assert set(ours.tolist()) == set(scipy_way.tolist())


@pytest.mark.parametrize("num_method", ["ks", "psi", "jensenshannon", "wasserstein"])
def test_methods_above_the_exact_ks_size_match_evidently(num_method):
    """12,000 reference rows: KS takes the asymptotic p-value (sorted-input path), PSI/JS the sorted binning."""
    ref, cur = _frames(12_000, 10_500, True, seed=8)
    cur["age"] = ref["age"].sample(10_500, random_state=1).to_numpy() + 0.05  # a small shift: p-value not ~0
    numeric = ["amount", "age", "small_int", "with_nulls"]
    theirs = evidently_drift(ref, cur, numeric=numeric, categorical=[], num_method=num_method)
    _assert_same(_ours(ref, cur, numeric, [], num_method), theirs)


def test_load_reference_reads_what_the_reference_stored(team):
    """engine.load_reference reads the prepared columns with a binary COPY: the same sorted values (aligned
    float64 arrays) and counts as the stored rows, all of them or only the named ones."""
    from apps.monitoring import engine

    from . import factories as f

    data = f.frame(300)
    data.loc[::9, "amount"] = np.nan
    ref = f.reference(team, f.model_version(team), data)
    loaded = engine.load_reference(ref)
    stored = list(ref.column_data.all())
    assert set(loaded) == {c.name for c in stored}
    for col in stored:
        if col.kind == "numeric":
            values = loaded[col.name]["sorted"]
            assert values.flags.aligned and np.array_equal(values, np.frombuffer(bytes(col.sorted_values), np.float64))
        else:
            assert loaded[col.name] == {"kind": "categorical", "counts": col.counts}
    assert set(engine.load_reference(ref, ["amount", "country", "absent"])) == {"amount", "country"}
    assert engine.load_reference(ref, []) == {}


def test_binary_copy_rows_are_read_across_any_chunk_boundary():
    from apps.monitoring.engine import _binary_copy_rows

    stream = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
    for fields in ([b"abc", None], [b"", b"\x00" * 16]):
        stream += (2).to_bytes(2, "big")
        for value in fields:
            stream += (-1).to_bytes(4, "big", signed=True) if value is None else len(value).to_bytes(4, "big") + value
    stream += (-1).to_bytes(2, "big", signed=True)
    for cut in range(len(stream) + 1):
        rows = _binary_copy_rows([stream[:cut], stream[cut:]], fields=2)
        assert [[None if v is None else bytes(v) for v in row] for row in rows] == [[b"abc", None], [b"", b"\x00" * 16]]


def test_window_numeric_columns_read_by_pyarrow_equal_duckdbs_read(team, monkeypatch):
    """columnar.read_window's float64 path (floatcolumns) against the DuckDB read it replaces: windows cutting
    through files (time filter) or holding them whole, nulls, a column absent from some files or from all, the
    prediction; a column stored as text in some file still goes to DuckDB."""
    from datetime import timedelta

    from apps.monitoring import columnar, engine, floatcolumns

    from . import factories as f

    version = f.model_version(team)
    f.logs(version, f.frame(48, seed=1), span=timedelta(hours=48))
    columnar.write_batch(model_version_id=version.pk, batch_pk=98, rows=[
        (f.T0 + timedelta(hours=30, minutes=i), f"n-{i}", {"age": None, "late": 1.5 + i}, "1", None) for i in range(4)])

    def read(start, end, names):
        return columnar.read_window(model_version_id=version.pk, start=start, end=end, numeric=names, categorical=[])

    names = ["age", "late", "absent", engine.PREDICTION]
    for start, end in [(f.T0, f.T0 + timedelta(days=2)), (f.T0 + timedelta(hours=5), f.T0 + timedelta(hours=31)),
                       (f.T0 + timedelta(days=1), f.T0 + timedelta(days=2))]:
        fast = read(start, end, names)
        with monkeypatch.context() as m:
            m.setattr(floatcolumns, "read_float_columns", lambda *args: (None, None))
            slow = read(start, end, names)
        assert fast.rows == slow.rows > 0
        for name in names:
            assert np.array_equal(np.sort(fast.numeric[name]), np.sort(slow.numeric[name]), equal_nan=True), name
    columnar.write_batch(model_version_id=version.pk, batch_pk=99, rows=[(f.T0 + timedelta(hours=2), "t", {"age": "x"},
                                                                          "1", 1.0)])
    files = columnar._files(model_version_id=version.pk, start=f.T0, end=f.T0 + timedelta(days=2))
    scan = columnar._Scan(files, f.T0, f.T0 + timedelta(days=2), 1)
    try:
        assert floatcolumns.read_float_columns(files, scan, ["age"], f.T0, f.T0 + timedelta(days=2)) == (None, None)
    finally:
        scan.close()
    assert np.isnan(read(f.T0, f.T0 + timedelta(days=2), ["age"]).numeric["age"]).sum() == 5  # "x" and 4 nulls
