"""alpha.eval.bootstrap: the vectorised bootstrap against the registered metrics on explicitly resampled
frames, hand-computed replicates, determinism and pairing, and the Table 1 CI / delta files."""
import copy
import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from alpha.eval import bootstrap as B
from alpha.eval import figures, metrics, tables

ROOT = Path(__file__).resolve().parents[2]
NAN = float("nan")


# --------------------------------------------------------------------------- small frames, one per metric

def _probs(rng, n):
    return list(rng.dirichlet(np.ones(n)))


def ordinal_frame(rng):
    """Representativeness: 6 questions, one nominal (equal ordinals) and one skipped (NaN model probs)."""
    rows = []
    for q in range(6):
        ordinals = [1.0, 1.0, 1.0] if q == 4 else [1.0, 2.0, 3.0]
        model = [NAN] * 3 if q == 5 else _probs(rng, 3)
        rows.append({"question": f"q{q}", "model_probs": model, "human_probs": _probs(rng, 3), "ordinals": ordinals})
    return pd.DataFrame(rows)


def steer_frame(rng):
    """Steerability: 3 groups x 3 contexts x up to 4 questions; strata of different sizes, NaN rows and one
    stratum with no usable row (g2/bio)."""
    rows = []
    for g in ("g0", "g1", "g2"):
        for c in ("qa", "bio", "portray"):
            for q in range(4):
                if (g, c) == ("g1", "portray") and q == 3:
                    continue  # a smaller stratum
                model = [NAN] * 3 if (g, c) == ("g2", "bio") or (g, c, q) == ("g0", "qa", 1) else _probs(rng, 3)
                rows.append({"question": f"q{q}", "group": g, "context": c, "model_probs": model,
                             "human_probs": _probs(rng, 3), "overall_probs": _probs(rng, 3), "ordinals": [1.0, 2.0, 4.0]})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)  # row order must not matter


def temporal_frame(rng):
    rows = []
    for q in range(5):
        for year in range(2000, 2000 + 1 + q % 3):
            model = [NAN] * 3 if (q, year) == (2, 2001) else _probs(rng, 3)
            rows.append({"question": f"q{q}", "year": year, "model_probs": model, "human_probs": _probs(rng, 3),
                         "ordinals": [1.0, 1.0, 1.0] if q == 3 else [1.0, 2.0, 3.0]})
    return pd.DataFrame(rows)


def goqa_frame(rng):
    rows = []
    for q in range(6):
        for country in ("A", "B", "C", "D")[: 2 + q % 3]:
            model = _probs(rng, 4)
            human = list(model) if (q, country) == (1, "A") else _probs(rng, 4)  # CultureBank's eps: NaN distance
            rows.append({"question": f"q{q}", "country": country, "model_probs": model, "human_probs": human})
    return pd.DataFrame(rows)


def culturebank_frame(rng, with_ids=False):
    n = 12
    frame = pd.DataFrame({"p_yes": rng.random(n), "p_no": rng.random(n), "agreement": rng.random(n)})
    frame.loc[3, "p_yes"] = NAN
    frame.loc[7, "agreement"] = NAN
    if with_ids:
        frame["item_id"] = [f"culturebank:reddit:{i}" for i in range(n)]
    return frame


def nli_frame(rng):
    rows = []
    for k in range(9):
        ratings = list(rng.choice(["E", "N", "C"], size=3, p=[0.5, 0.25, 0.25]))
        rows.append({"premise": f"p{k % 4}", "hypothesis": f"h{k}", "ratings": ratings, "p_entail": float(rng.random())})
    rows[2]["p_entail"] = NAN
    rows.append({**rows[0], "p_entail": 0.99})  # a duplicate pair: the later row wins
    return pd.DataFrame(rows)


# (metric, variant, frame builder, params, key column relabelled per drawn copy)
CASES = [
    ("representativeness", "reference", ordinal_frame, {}, "question"),
    ("representativeness", "compat", ordinal_frame, {}, "question"),
    ("steerability", "reference", steer_frame, {}, "question"),
    ("steerability", "compat", steer_frame, {}, "question"),
    ("temporal_steerability", "reference", temporal_frame, {}, "question"),
    ("goqa_avg_sim", "reference", goqa_frame, {}, "question"),
    ("goqa_avg_sim", "compat", goqa_frame, {}, "question"),
    ("goqa_skew", "reference", goqa_frame, {}, "question"),
    ("goqa_skew", "compat", goqa_frame, {}, "question"),
    ("culturebank_accuracy", "reference", culturebank_frame, {}, None),
    ("culturebank_macro_f1", "reference", culturebank_frame, {}, None),
    ("culturenli_macro_f1", "reference", nli_frame, {}, "premise"),
]
UNIT_COLUMNS = {"representativeness": ["question"], "steerability": ["group", "context", "question"],
                "temporal_steerability": ["question"], "goqa_avg_sim": ["question"], "goqa_skew": ["question"],
                "culturenli_macro_f1": ["premise", "hypothesis"]}


def test_every_registered_metric_and_variant_has_a_bootstrap():
    registered = {(name, variant) for name, variants in metrics.known_metrics().items() for variant in variants}
    assert registered == B.known_bootstraps() == {(name, variant) for name, variant, *_ in CASES}


def _unit_rows(frame, name):
    """{sorted unit key: the frame's rows of that unit}, computed here without the module's key code."""
    if name.startswith("culturebank"):
        return {(str(i),): frame.iloc[[i]] for i in sorted(range(len(frame)), key=str)}  # keys sort as text
    if name == "culturenli_macro_f1":
        frame = metrics.dedupe_pairs(frame)[0]
    columns = UNIT_COLUMNS[name]
    keys = [tuple(str(v) for v in row) for row in frame[columns].itertuples(index=False)]
    return {key: frame[[k == key for k in keys]] for key in sorted(set(keys))}


def explicit_resample(frame, name, draws_row, relabel):
    """The resampled frame itself: the rows of each drawn unit, once per draw, its key relabelled per copy
    so that the metric's duplicate checks (and CultureNLI's dedupe) see distinct units."""
    units = list(_unit_rows(frame, name).values())
    parts = []
    for position, u in enumerate(draws_row):
        rows = units[u].copy()
        if relabel:
            rows[relabel] = rows[relabel].astype(str) + f"#{position}"
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


def _metric_params(frame, name, variant, params):
    # steerability compat divides by a fixed N: the original frame's (a resample keeps each stratum's size)
    if (name, variant) == ("steerability", "compat"):
        return {"n_questions": metrics.steerability_compat_denominator(frame), **params}
    return params


@pytest.mark.parametrize("name,variant,build,params,relabel", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_each_replicate_is_the_metric_on_the_explicitly_resampled_frame(name, variant, build, params, relabel):
    rng = np.random.default_rng(7)
    frame = build(rng)
    prepared = B.prepare(frame, name, variant, **params)
    assert len(prepared.keys) == len(_unit_rows(frame, name))  # the same units, in sorted key order
    metric = metrics.get_metric(name, variant)
    assert prepared.point() == pytest.approx(metric(frame, **params).value, nan_ok=True)  # every unit once
    # draws from the module's own generator (stratified where the metric is), plus an all-excluded resample
    draws = B.draws(prepared, 25, seed=3, benchmark="bench", column=name)
    excluded_units = [u for u, rows in enumerate(_unit_rows(frame, name).values())
                      if np.isnan(B.prepare(rows, name, variant, **params).point())] if name != "steerability" else []
    if excluded_units and len(prepared.sizes) == 1:
        draws = np.vstack([draws, np.full((1, prepared.n_units), excluded_units[0])])
    values = B.bootstrap_metric(frame, name, variant, benchmark="bench", column=name, params=params,
                                explicit_draws=draws).replicates
    assert len(values) == len(draws)
    for b, row in enumerate(draws):
        resampled = explicit_resample(frame, name, row, relabel)
        expected = metric(resampled, **_metric_params(frame, name, variant, params)).value
        assert values[b] == pytest.approx(expected, abs=1e-12, nan_ok=True), (name, variant, b)


def test_culturebank_units_are_item_ids_when_the_frame_has_them():
    frame = culturebank_frame(np.random.default_rng(0), with_ids=True)
    shuffled = frame.sample(frac=1.0, random_state=3)
    one = B.bootstrap_metric(frame, "culturebank_accuracy", benchmark="cb", column="CultureBank Reddit", n=50)
    two = B.bootstrap_metric(shuffled, "culturebank_accuracy", benchmark="cb", column="CultureBank Reddit", n=50)
    assert one.unit == "item" and one.units_digest == two.units_digest
    np.testing.assert_array_equal(one.replicates, two.replicates)


# --------------------------------------------------------------------------- by hand

def test_representativeness_replicates_by_hand():
    # ordinals 1,2,3, human all on option 1: model [0,1,0] -> WD 1/2; [.5,.5,0] -> 1/4; = human -> 0
    frame = pd.DataFrame({"question": ["c", "a", "b"], "ordinals": [[1, 2, 3]] * 3, "human_probs": [[1, 0, 0]] * 3,
                          "model_probs": [[1, 0, 0], [0, 1, 0], [0.5, 0.5, 0]]})
    # sorted units: a (WD .5), b (.25), c (0)
    draws = np.array([[0, 0, 1], [2, 2, 2], [0, 1, 2], [0, 0, 0]])
    got = B.bootstrap_metric(frame, "representativeness", benchmark="x", column="y", explicit_draws=draws).replicates
    np.testing.assert_allclose(got, [1 - (0.5 + 0.5 + 0.25) / 3, 1.0, 1 - 0.75 / 3, 0.5])


def test_steerability_replicates_by_hand():
    wd_model = {0.5: [0, 1, 0], 0.25: [0.5, 0.5, 0], 0.0: [1, 0, 0]}  # human [1, 0, 0], ordinals 1..3
    cells = [("g1", "qa", "q1", 0.5), ("g1", "qa", "q2", 0.0), ("g1", "bio", "q1", 0.25), ("g1", "bio", "q2", 0.25),
             ("g2", "qa", "q1", 0.0), ("g2", "qa", "q2", 0.5)]
    frame = pd.DataFrame([{"group": g, "context": c, "question": q, "model_probs": wd_model[w], "human_probs": [1, 0, 0],
                           "ordinals": [1, 2, 3]} for g, c, q, w in cells])
    prepared = B.prepare(frame, "steerability")
    # units sorted: g1/bio/q1, g1/bio/q2 | g1/qa/q1, g1/qa/q2 | g2/qa/q1, g2/qa/q2 (three strata of two)
    assert list(prepared.sizes) == [2, 2, 2] and prepared.point() == pytest.approx(0.75)
    draws = np.array([[0, 0, 2, 2, 5, 5],   # g1: bio .75, qa .5 -> .75; g2: .5 -> mean .625
                      [1, 1, 3, 3, 4, 4]])  # g1: bio .75, qa 1 -> 1; g2: 1 -> 1
    got = B.replicates(prepared, explicit_draws=draws)
    np.testing.assert_allclose(got, [0.625, 1.0])
    with pytest.raises(ValueError, match="stratum"):
        B.replicates(prepared, explicit_draws=np.array([[0, 2, 2, 2, 4, 4]]))  # position 1 drawn from another stratum
    # the module's own draws stay within each stratum
    d = B.draws(prepared, 200, seed=1, benchmark="b", column="c")
    assert d[:, :2].max() <= 1 and d[:, 2:4].min() >= 2 and d[:, 2:4].max() <= 3 and d[:, 4:].min() >= 4


def test_culturenli_replicates_by_hand():
    # pairs a (gold E, P(E) .95), b (gold E, .65), c (gold C, .75); thresholds .6 .7 .8 .9 1.0
    frame = pd.DataFrame({"premise": ["a", "b", "c"], "hypothesis": ["h"] * 3, "ratings": [["E", "E", "N"], ["E"], ["C", "C", "E"]],
                          "p_entail": [0.95, 0.65, 0.75]})
    assert metrics.get_metric("culturenli_macro_f1")(frame).value == pytest.approx(2 / 3)  # t = .8: F1 2/3 both classes
    draws = np.array([[0, 0, 2],   # gold E E C, P .95 .95 .75: t = .8 predicts it exactly -> 1
                      [1, 2, 2],   # gold E C C, P .65 .75 .75: t .6 -> (.5 + 0)/2; t .7 -> 0; t >= .8 -> (0 + .8)/2 = .4
                      [2, 2, 2]])  # only C: t >= .8 predicts rest everywhere -> F1(rest) 1, E absent -> 1
    got = B.bootstrap_metric(frame, "culturenli_macro_f1", benchmark="x", column="y", explicit_draws=draws).replicates
    np.testing.assert_allclose(got, [1.0, 0.4, 1.0])


def test_undefined_replicates_are_nan_and_left_out_of_the_interval():
    frame = pd.DataFrame({"question": ["a", "b"], "ordinals": [[1, 2], [1, 1]], "human_probs": [[1, 0]] * 2,
                          "model_probs": [[0, 1], [0, 1]]})  # b is nominal: excluded
    boot = B.bootstrap_metric(frame, "representativeness", benchmark="x", column="y",
                              explicit_draws=np.array([[0, 1], [1, 1], [0, 0]]))
    assert boot.replicates[0] == 0.0 and math.isnan(boot.replicates[1]) and boot.replicates[2] == 0.0
    ci = boot.ci()
    assert ci["n"] == 3 and ci["n_valid"] == 2 and ci["low"] == ci["high"] == 0.0
    assert boot.fields()["bootstrap"] == [0.0, None, 0.0]


# --------------------------------------------------------------------------- determinism and pairing

def _two_models(rng):
    a = ordinal_frame(rng)
    b = a.assign(model_probs=[_probs(rng, 3) for _ in range(len(a))])
    return a, b


def test_deterministic_and_the_same_draws_for_every_model_of_a_cell():
    rng = np.random.default_rng(0)
    a, b = _two_models(rng)
    kwargs = dict(benchmark="opinionqa", column="OpinionQA Representativeness", n=250, seed=5)
    one, again = B.bootstrap_metric(a, "representativeness", **kwargs), B.bootstrap_metric(a, "representativeness", **kwargs)
    np.testing.assert_array_equal(one.replicates, again.replicates)
    pa, pb = B.prepare(a, "representativeness"), B.prepare(b.iloc[::-1], "representativeness")  # another row order
    assert pa.digest == pb.digest
    da = B.draws(pa, 250, 5, "opinionqa", "OpinionQA Representativeness")
    np.testing.assert_array_equal(da, B.draws(pb, 250, 5, "opinionqa", "OpinionQA Representativeness"))
    assert not np.array_equal(da, B.draws(pa, 250, 5, "opinionqa", "OpinionQA Steerability"))  # another column
    assert not np.array_equal(da, B.draws(pa, 250, 6, "opinionqa", "OpinionQA Representativeness"))  # another seed
    # row order never matters, and a larger B only adds replicates
    np.testing.assert_array_equal(B.bootstrap_metric(a.iloc[::-1], "representativeness", **kwargs).replicates, one.replicates)
    more = B.bootstrap_metric(a, "representativeness", **{**kwargs, "n": 420})
    np.testing.assert_array_equal(more.replicates[:250], one.replicates)
    assert B.stream_entropy(5, "opinionqa", "x") == B.stream_entropy(5, "opinionqa", "x") != B.stream_entropy(5, "gss", "x")


def _entry(frame, name="representativeness", variant="reference", column="OpinionQA Representativeness", **kwargs):
    value = metrics.get_metric(name, variant)(frame).value
    fields = B.metric_fields(frame, name, variant, {}, "opinionqa", column, {"n": 300, "seed": 2, "level": 0.95, **kwargs})
    return {"column": column, "value": value, **fields}


def test_paired_delta_of_a_model_with_itself_is_exactly_zero():
    a, _ = _two_models(np.random.default_rng(1))
    entry = json.loads(json.dumps(_entry(a)))  # as read back from the metric JSON
    d = B.paired_delta(entry, entry, benchmark="opinionqa", column="OpinionQA Representativeness")
    assert d["delta"] == 0.0 and d["low"] == 0.0 and d["high"] == 0.0 and d["excludes_zero"] is False
    assert d["n_valid"] == 300 and d["level"] == 0.95


def test_paired_delta_uses_the_replicate_differences_and_refuses_other_units():
    a, b = _two_models(np.random.default_rng(2))
    ea, eb = _entry(a), _entry(b)
    d = B.paired_delta(ea, eb, benchmark="opinionqa", column="OpinionQA Representativeness")
    diffs = np.array(ea["bootstrap"]) - np.array(eb["bootstrap"])
    assert d["delta"] == pytest.approx(ea["value"] - eb["value"])
    assert (d["low"], d["high"]) == pytest.approx(tuple(np.quantile(diffs, [0.025, 0.975])))
    assert d["excludes_zero"] == (d["low"] > 0 or d["high"] < 0)
    fewer = _entry(a.iloc[1:])
    with pytest.raises(B.UnpairedError, match="opinionqa / OpinionQA Representativeness.*units"):
        B.paired_delta(ea, fewer, benchmark="opinionqa", column="OpinionQA Representativeness")
    with pytest.raises(B.UnpairedError, match="seed"):
        B.paired_delta(ea, _entry(b, seed=3), benchmark="opinionqa", column="OpinionQA Representativeness")
    # without replicates (bootstrap off) only the difference of the values
    bare = {k: v for k, v in eb.items() if k not in ("ci", "bootstrap")}
    assert B.paired_delta(ea, bare)["low"] is None and B.paired_delta(ea, bare)["delta"] == d["delta"]


def test_settings_fill_defaults_and_n_zero_switches_off():
    assert B.settings({"n": 0, "seed": 1, "level": 0.95}) is None and B.settings(None) is None
    assert B.settings({"n": 20, "seed": None}) == {"n": 20, "seed": 0, "level": 0.95}
    frame = ordinal_frame(np.random.default_rng(0))
    assert B.metric_fields(frame, "representativeness", "reference", {}, "b", "c", {"n": 0}) == {}
    fields = B.metric_fields(frame, "representativeness", "reference", {}, "b", "c", {"n": 40, "seed": 1, "level": 0.9})
    ci = fields["ci"]
    assert ci["n"] == 40 == len(fields["bootstrap"]) and ci["level"] == 0.9 and ci["method"] == "percentile"
    assert ci["unit"] == "question" and ci["units"] == 6 and len(ci["units_digest"]) == 16
    assert ci["low"] <= metrics.get_metric("representativeness")(frame).value <= ci["high"]


def test_memory_blocks_do_not_change_the_replicates(monkeypatch):
    frame = steer_frame(np.random.default_rng(4))
    prepared = B.prepare(frame, "steerability")
    draws = B.draws(prepared, 230, 0, "b", "c")
    whole = B.replicates(prepared, explicit_draws=draws)
    monkeypatch.setattr(B, "DRAW_BLOCK", 7)
    np.testing.assert_array_equal(B.replicates(prepared, explicit_draws=draws), whole)


def test_evaluate_writes_ci_and_replicates_per_metric_and_pairs_two_models(tmp_path):
    from test_evaluation import prepare_nli, write_scores  # the CultureNLI fixture of the metric-step tests

    from alpha.core import io
    from alpha.eval import items, results, task_spec

    items_path = prepare_nli(tmp_path)
    ids = [i["item_id"] for i in items.read_items(items_path)]
    task = task_spec.load_task("culturenli")
    settings = {"n": 60, "seed": 4, "level": 0.9}
    out = {}
    for model, p_e in (("a", [0.9, 0.2, 0.65, 0.5]), ("b", [0.7, 0.75, 0.95, 0.1])):
        scores = write_scores(tmp_path / f"{model}.parquet", {i: [p, (1 - p) / 2, (1 - p) / 2] for i, p in zip(ids, p_e)}, ["E", "N", "C"])
        result = results.evaluate(task, "reference", items_path, scores, "culturenli", model, bootstrap=settings)
        io.write_json(tmp_path / f"{model}.json", result)  # strict JSON
        out[model] = io.read_json(tmp_path / f"{model}.json")
    us = {m: out[m]["metrics"][0] for m in out}
    ci = us["a"]["ci"]
    assert ci["n"] == 60 == len(us["a"]["bootstrap"]) and ci["level"] == 0.9 and ci["unit"] == "(premise, hypothesis) pair"
    assert ci["units"] == 2 and ci["units_digest"] == us["b"]["ci"]["units_digest"] and ci["seed"] == 4
    assert ci["low"] <= us["a"]["value"] <= ci["high"]
    d = B.paired_delta(us["a"], us["b"], benchmark="culturenli", column="CultureNLI US")
    assert d["delta"] == pytest.approx(us["a"]["value"] - us["b"]["value"]) and d["n_valid"] == 60
    plain = results.evaluate(task, "reference", items_path, tmp_path / "a.parquet", "culturenli", "a")
    assert all("ci" not in m and "bootstrap" not in m for m in plain["metrics"])
    assert [m["value"] for m in plain["metrics"]] == [m["value"] for m in out["a"]["metrics"]]


# --------------------------------------------------------------------------- tables and figure

def _result(model, cells):
    return {"model": model, "benchmark": "gss", "metrics": [
        {"column": c, "name": "representativeness", "family": "ordinal_wd", "variant": "reference", "value": v,
         "n_items": 3, "excluded": {}, "where": {}, **extra} for c, (v, extra) in cells.items()]}


def _boot(values, digest="d1", low=None, high=None):
    return {"ci": {"low": min(values) if low is None else low, "high": max(values) if high is None else high, "level": 0.95,
                   "n": len(values), "n_valid": len(values), "method": "percentile", "unit": "question", "units": 3,
                   "units_digest": digest, "seed": 0},
            "bootstrap": list(values)}


def _hand_results():
    # 41 replicates: the 2.5% and 97.5% quantiles are the 2nd smallest and 2nd largest (no interpolation)
    rep, steer, k = "GSS Representativeness", "GSS Steerability", np.arange(41) - 20
    return [
        _result("base", {rep: (0.5, _boot([0.5] * 41, low=0.49, high=0.51)), steer: (0.7, _boot([0.7] * 41))}),
        _result("ft", {rep: (0.6, _boot(list(0.6 + 0.001 * k))),
                       steer: (0.69, _boot(list(0.69 + 0.002 * k), low=0.68, high=0.71))}),
        _result("ft2", {rep: (0.5, _boot([0.5] * 41))}),
    ]


MODELS = [("base", "Base"), ("ft", "FT"), ("ft2", "FT 2")]
BASES = {"ft": "base", "ft2": "base"}


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_table1_ci_csv_has_the_shape_of_table1_and_low_dash_high_cells(tmp_path):
    rows, header = tables.ci_table(MODELS, _hand_results())
    tables.write_csv(rows, header, tmp_path / "ci.csv")
    read = _read_csv(tmp_path / "ci.csv")
    table1_rows, sidecar = tables.table1(MODELS, _hand_results())
    assert read[0] == sidecar["columns"] and len(read) == 1 + len(MODELS)
    by = {r[0]: dict(zip(read[0], r)) for r in read[1:]}
    assert by["Base"]["GSS Representativeness"] == "49.00\u201351.00" and by["FT"]["GSS Steerability"] == "68.00\u201371.00"
    assert by["FT 2"]["GSS Steerability"] == "" and by["Base"]["OpinionQA Representativeness"] == ""
    assert tables.ci_cell({"low": -0.00001, "high": 0.5}) == "0.00\u201350.00" and tables.ci_cell(None) == ""
    # the table sidecar carries each cell's CI on the value's scale, without the replicates
    cell = sidecar["cells"]["FT"]["GSS Representativeness"]
    assert cell["ci"]["low"] == pytest.approx(0.58) and cell["ci"]["high"] == pytest.approx(0.62) and "bootstrap" not in cell
    assert table1_rows[1]["GSS Representativeness"] == "60.00"


def test_table1_delta_csv_and_sidecar(tmp_path):
    rows, sidecar = tables.delta_table(MODELS, _hand_results(), BASES)
    tables.write_table(rows, sidecar, tmp_path / "delta.csv", tmp_path / "delta.json")
    read = _read_csv(tmp_path / "delta.csv")
    assert read[0] == ["Model", "Base", *tables.TABLE1_COLUMNS] and [r[0] for r in read[1:]] == ["FT", "FT 2"]
    ft, ft2 = dict(zip(read[0], read[1])), dict(zip(read[0], read[2]))
    # FT - Base, replicate by replicate: rep .1 + .001 k (k = -20..20) -> [8.10, 11.90], excludes 0;
    # steer -.01 + .002 k -> [-4.80, 2.80]
    assert ft["Base"] == "Base"
    assert ft["GSS Representativeness"] == "10.00 [8.10, 11.90]*"
    assert ft["GSS Steerability"] == "-1.00 [-4.80, 2.80]"
    assert ft2["GSS Representativeness"] == "0.00 [0.00, 0.00]" and ft2["GSS Steerability"] == ""
    side = json.loads((tmp_path / "delta.json").read_text())
    cell = side["models"]["FT"]["cells"]["GSS Representativeness"]
    assert cell["delta"] == pytest.approx(0.1) and cell["excludes_zero"] is True and cell["base"] == "base"
    assert cell["low"] == pytest.approx(0.081) and cell["high"] == pytest.approx(0.119)
    assert side["models"]["FT"]["base"] == "base" and side["mark"] == "*" and side["level"] == 0.95
    assert tables.delta_cell({"delta": 0.01, "low": None, "high": None}) == "1.00" and tables.delta_cell(None) == ""
    # a model against itself: 0.00 [0.00, 0.00], never marked
    same = tables.delta_table([("base", "Base")], _hand_results()[:1], {"base": "base"})[0][0]
    assert same["GSS Representativeness"] == "0.00 [0.00, 0.00]"


def test_delta_table_refuses_cells_whose_units_differ():
    results = _hand_results()
    results[1]["metrics"][0].update(_boot([0.6] * 41, digest="other"))
    with pytest.raises(B.UnpairedError, match="gss / GSS Representativeness: cannot pair ft with base"):
        tables.delta_table(MODELS, results, BASES)


def test_heatmap_marks_cells_whose_paired_ci_excludes_zero(tmp_path):
    _, sidecar = tables.table1(MODELS, _hand_results())
    _, delta = tables.delta_table(MODELS, _hand_results(), BASES)
    figures.plot_table(sidecar, tmp_path / "plain.png")
    figures.plot_table(sidecar, tmp_path / "one.png", delta=delta)
    figures.plot_table(sidecar, tmp_path / "two.png", delta=delta)
    assert (tmp_path / "one.png").read_bytes() == (tmp_path / "two.png").read_bytes()
    assert (tmp_path / "one.png").read_bytes() != (tmp_path / "plain.png").read_bytes()
    assert figures.marked_cells(sidecar, delta) == {("FT", "GSS Representativeness")}


# --------------------------------------------------------------------------- configuration

def test_the_config_schema_accepts_and_fills_the_bootstrap_defaults():
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    validate(cfg, str(ROOT / "config/schema.yaml"))
    assert cfg["eval"]["bootstrap"]["n"] == 1000 and cfg["eval"]["bootstrap"]["level"] == 0.95
    bare = copy.deepcopy(cfg)
    del bare["eval"]["bootstrap"]
    validate(bare, str(ROOT / "config/schema.yaml"))
    assert bare["eval"]["bootstrap"] == {"n": 1000, "seed": None, "level": 0.95}
    for bad in ({"n": -1}, {"level": 1.5}, {"seed": "x"}, {"draws": 3}):
        broken = copy.deepcopy(bare)
        broken["eval"]["bootstrap"] = bad
        with pytest.raises(WorkflowError):
            validate(broken, str(ROOT / "config/schema.yaml"))
