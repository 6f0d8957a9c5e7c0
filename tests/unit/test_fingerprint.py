"""Row fingerprints: equal rows agree however the data is chunked or sliced; near-misses differ."""
import datetime as dt

import numpy as np
import pyarrow as pa

from alpha.ads.fingerprint import row_fingerprints

ROWS = {
    "s": ["ab", "c", "", None, "ab", "héllo wörld", "c"],
    "l": [["ab", "c"], ["a", "bc"], [], None, ["ab", "c"], ["x"], ["c"]],
    "f": [[0.5, 0.25], [0.25, 0.5], [], [0.0], [0.5, 0.25], [1e-5], [-0.0]],
    "d": [dt.date(2023, 1, 1), dt.date(2023, 1, 2), None, dt.date(1970, 1, 1), dt.date(2023, 1, 1), None, None],
}
TYPES = {"s": pa.string(), "l": pa.list_(pa.string()), "f": pa.list_(pa.float64()), "d": pa.date32()}
COLS = list(ROWS)


def table():
    return pa.table({k: pa.array(v, TYPES[k]) for k, v in ROWS.items()})


def test_equal_rows_equal_distinct_rows_distinct():
    h = row_fingerprints(table(), COLS)
    assert h.dtype == np.uint64
    assert h[0] == h[4]  # identical rows
    assert len({int(x) for i, x in enumerate(h) if i != 4}) == 6


def test_boundaries_order_nulls_and_empties_matter():
    single = lambda col, values: row_fingerprints(pa.table({col: pa.array(values, TYPES[col])}), [col])  # noqa: E731
    h = single("l", [["ab", "c"], ["a", "bc"], ["c", "ab"], [], None, [""]])
    assert len(set(h.tolist())) == 6
    h = single("s", ["", None, "\x00", " "])
    assert len(set(h.tolist())) == 4
    h = single("f", [[0.0], [-0.0], [1.0]])
    assert h[0] == h[1] != h[2]


def test_independent_of_chunking_and_slicing():
    t = table()
    whole = row_fingerprints(t, COLS)
    for start in range(len(whole)):
        sliced = row_fingerprints(t.slice(start), COLS)
        assert (sliced == whole[start:]).all()
    batches = t.to_batches(max_chunksize=2)
    parts = np.concatenate([row_fingerprints(b, COLS) for b in batches])
    assert (parts == whole).all()


def test_column_order_matters():
    t = table()
    assert (row_fingerprints(t, ["s", "l"]) != row_fingerprints(t, ["l", "s"])).any()


def test_no_collisions_on_many_similar_strings():
    values = [f"ad body number {i}" for i in range(200_000)]
    h = row_fingerprints(pa.table({"s": values}), ["s"])
    assert len(np.unique(h)) == len(values)
