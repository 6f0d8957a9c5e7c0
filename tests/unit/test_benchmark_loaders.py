"""alpha.eval.loaders: loaders, prompts and demo files for GlobalOpinionQA, CultureBank and CultureNLI
(as the loaders' docstrings describe them). Fixtures are written here, by hand, in the released layouts."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from alpha.demo.benchmarks import write_demo_benchmarks
from alpha.eval.loaders import UnknownLoaderError, get_loader, loader_names, register_loader
from alpha.eval.loaders import culturebank as cb
from alpha.eval.loaders import globalopinionqa as goqa
from alpha.eval.loaders.culturenli import majority_label

# ------------------------------------------------------------------------------------- registry


def test_registry_names_and_did_you_mean():
    assert {"globalopinionqa", "culturebank", "culturenli"} <= set(loader_names())
    assert get_loader("culturenli").__name__ == "load_culturenli"
    with pytest.raises(UnknownLoaderError) as err:
        get_loader("culturnli")
    message = str(err.value)
    assert "did you mean 'culturenli'?" in message
    assert "culturebank, culturenli, globalopinionqa" in message
    with pytest.raises(UnknownLoaderError) as err:
        get_loader("zzz")
    assert "did you mean" not in str(err.value) and "globalopinionqa" in str(err.value)


def test_register_twice_fails():
    with pytest.raises(ValueError, match="already registered"):
        register_loader("culturenli")(lambda path: None)


# ------------------------------------------------------------------------------ GlobalOpinionQA


def goqa_fixture(tmp_path: Path, sentinel: Path) -> Path:
    text = (
        "question,selections,options,source\n"
        # 0: a good row; a country spelt with an apostrophe (repr puts it in double quotes)
        "Do people in your country trust each other?,"
        "\"defaultdict(<class 'list'>, {'France': [0.6, 0.3, 0.1], \"\"Côte d'Ivoire\"\": [0.5, 0.45, 0.04]})\","
        "\"['Yes', 'No', 'DK/Refused']\",GAS\n"
        # 1: code instead of a literal: must be quarantined, never run
        "Is this safe?,"
        f"\"defaultdict(<class 'list'>, {{'France': __import__('pathlib').Path('{sentinel}').touch()}})\","
        "\"['Yes', 'No']\",GAS\n"
        # 2: a selection list shorter than the options
        "Is the economy good?,"
        "\"defaultdict(<class 'list'>, {'Peru': [0.5, 0.5, 0.0], 'Chile': [0.5, 0.5]})\","
        "\"['Good', 'Bad', 'DK/Refused']\",GAS\n"
        # 3: numeric options; raw selections summing to 0.95 (kept as they are)
        "\"How satisfied are you with your life? (1 = not at all, 4 = completely)\","
        "\"defaultdict(<class 'list'>, {'Japan': [0.1, 0.2, 0.3, 0.3, 0.05]})\","
        "\"[1, 2, 3.0, 4.0, \"\"Don't know\"\"]\",WVS\n"
        # 4: options that do not parse
        "Broken options?,\"defaultdict(<class 'list'>, {'Peru': [1.0]})\",\"['Yes', 'No'\",WVS\n"
    )
    path = tmp_path / "global_opinions.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_goqa_items_prompt_and_quarantine(tmp_path, monkeypatch):
    sentinel = tmp_path / "pwned"

    def no_eval(*args, **kwargs):
        raise AssertionError("eval must never be called")

    monkeypatch.setattr(goqa, "eval", no_eval, raising=False)  # shadows the builtin inside the loader
    result = get_loader("globalopinionqa")(goqa_fixture(tmp_path, sentinel).parent)  # a folder works too
    assert not sentinel.exists()
    assert [q["row"] for q in result.quarantine] == [1, 2, 4]
    assert [q["reason"] for q in result.quarantine] == ["selections_unparseable", "selection_length_mismatch",
                                                        "options_unparseable"]
    assert "Chile: 2" in result.quarantine[1]["detail"]
    assert [i["item_id"] for i in result.items] == ["goqa:0:France", "goqa:0:Côte d'Ivoire", "goqa:3:Japan"]
    assert result.items[0] == {
        "item_id": "goqa:0:France",
        "benchmark": "globalopinionqa",
        "question_id": "goqa:0",
        "row": 0,
        "source": "GAS",
        "country": "France",
        "question": "Do people in your country trust each other?",
        "options": ["Yes", "No", "DK/Refused"],
        "labels": ["A", "B", "C"],
        "human": [0.6, 0.3, 0.1],
        "prompt": (
            "Human: How would someone from France answer the following question:\n"
            "Do people in your country trust each other?\n"
            "Here are the options:\n"
            "(A) Yes\n"
            "(B) No\n"
            "(C) DK/Refused\n"
            "Assistant: If I had to select one of the options, my answer would be ("
        ),
    }
    japan = result.items[2]
    assert japan["options"] == ["1", "2", "3.0", "4.0", "Don't know"]
    assert japan["labels"] == ["A", "B", "C", "D", "E"]
    assert japan["human"] == [0.1, 0.2, 0.3, 0.3, 0.05]  # raw, not renormalised
    assert "(D) 4.0\n(E) Don't know\nAssistant:" in japan["prompt"]
    assert result.report == {
        "benchmark": "globalopinionqa", "file": "global_opinions.csv", "rows_read": 5, "rows_loaded": 2,
        "sources": {"GAS": 1, "WVS": 1}, "countries": 3, "items": 3,
        "quarantined": {"options_unparseable": 1, "selection_length_mismatch": 1, "selections_unparseable": 1},
    }


@pytest.mark.parametrize("text", [
    "defaultdict(<class 'list'>, {'France': __import__('os').system('true')})",
    "__import__('os').system('true')",
    "defaultdict(<class 'list'>, {'France': [0.5, 0.5]}",  # truncated
    "defaultdict(<class 'list'>, {'France': [0.5, nan]})",
    "defaultdict(<class 'list'>, ['France', 0.5])",
    "defaultdict(<class 'list'>, {'France': ['0.5', 0.5]})",
])
def test_goqa_selections_rejected(text):
    with pytest.raises(goqa.RowError, match="selections_unparseable"):
        goqa.parse_selections(text)


def test_goqa_selections_forms():
    text = "defaultdict(<class 'list'>, {'Britain (Non-national sample)': [0.25, 0.75], \"Côte d'Ivoire\": [1, 0]})"
    assert goqa.parse_selections(text) == {"Britain (Non-national sample)": [0.25, 0.75], "Côte d'Ivoire": [1.0, 0.0]}
    assert goqa.parse_selections("{'Peru': [0.5, 0.5]}") == {"Peru": [0.5, 0.5]}
    with pytest.raises(goqa.RowError, match="selection_value_out_of_range"):
        goqa.parse_selections("defaultdict(<class 'list'>, {'Peru': [1.5, -0.5]})")


# ------------------------------------------------------------------------------------ CultureBank

CB_ROW = {
    "cluster_id": "0", "cultural group": "Québécois", "context": "at family dinners", "goal": "",
    "relation": "guest to host", "actor": "guests", "actor_behavior": "bring a bottle of wine",
    "recipient": "hosts", "recipient_behavior": "", "other_descriptions": "None", "topic": "Food and Dining",
    "agreement": "0.8", "num_support_bin": "[10, 20)", "time_range": "{2022: '[10, 20)'}",
    "eval_whole_desc": "In Québécois culture, guests bring wine to family dinners.",
    "eval_scenario": "A dinner invitation", "eval_persona": "A newcomer to Montréal",
    "eval_question": "What should I bring to a dinner in Montréal?",
}


def write_culturebank(root: Path, subset: str, rows: list[dict]) -> Path:
    path = root / subset / f"culturebank_{subset}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(cb.COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def twenty_rows() -> list[dict]:
    agreements = ["0.9", "0.1", "0.5", "0.7", "0.2", "0.6", "0.5", "1.0", "0.3", "0.8",
                  "0.4", "0.9", "0.6", "0.1", "0.7", "0.51", "0.2", "0.8", "0.3", "0.95"]
    return [dict(CB_ROW, cluster_id=str(100 + i), agreement=a) for i, a in enumerate(agreements)]


def test_culturebank_split_positions():
    assert cb.split_positions(20) == slice(18, 20)
    assert cb.split_positions(25) == slice(22, 25)  # floor(22.5) = 22: the last 3 (10% rounded up)
    assert cb.split_positions(9) == slice(8, 9)
    assert cb.split_positions(0) == slice(0, 0)
    assert cb.split_positions(20, "culturebank_code") == slice(19, 20)  # int(20 * 0.0999...) = 1
    with pytest.raises(ValueError, match="unknown CultureBank split"):
        cb.split_positions(20, "dev")


def test_culturebank_last_ten_percent_on_twenty_rows(tmp_path):
    # df.sample(frac=1, random_state=1234) on 20 rows gives file rows
    # [3, 13, 2, 16, 14, 5, 4, 0, 8, 18, 17, 11, 10, 9, 7, 1, 19, 12, 6, 15]: positions 18-19 are rows 6, 15
    write_culturebank(tmp_path, "tiktok", twenty_rows())
    result = get_loader("culturebank")(tmp_path, subsets=("tiktok",))
    assert [i["row"] for i in result.items] == [6, 15]
    assert [i["item_id"] for i in result.items] == ["culturebank:tiktok:6", "culturebank:tiktok:15"]
    assert [i["cluster_id"] for i in result.items] == ["106", "115"]
    assert [(i["agreement"], i["target"], i["gold"]) for i in result.items] == [(0.5, False, "No"), (0.51, True, "Yes")]
    assert result.report["subsets"] == {"tiktok": {"file": "tiktok/culturebank_tiktok.csv", "rows_read": 20,
                                                   "split_rows": 2, "items": 2}}
    code = get_loader("culturebank")(tmp_path, subsets=("tiktok",), split="culturebank_code")
    assert [i["row"] for i in code.items] == [15]
    full = get_loader("culturebank")(tmp_path, subsets=("tiktok",), split="full")
    assert [i["row"] for i in full.items] == list(range(20))


def test_culturebank_prompt_and_fields(tmp_path):
    write_culturebank(tmp_path, "tiktok", twenty_rows())
    write_culturebank(tmp_path, "reddit", [CB_ROW])
    result = get_loader("culturebank")(tmp_path, split="full")
    item = result.items[-1]
    assert item == {
        "item_id": "culturebank:reddit:0",
        "benchmark": "culturebank",
        "subset": "reddit",
        "row": 0,
        "cluster_id": "0",
        "cultural_group": "Québécois",
        "topic": "Food and Dining",
        "agreement": 0.8,
        "target": True,
        "gold": "Yes",
        "labels": ["Yes", "No"],
        "eval_question": "What should I bring to a dinner in Montréal?",
        "eval_whole_desc": "In Québécois culture, guests bring wine to family dinners.",
        "prompt": (
            "The following JSON describes a behaviour attributed to a cultural group: who does what, in which "
            "context, towards whom and why.\n"
            "{\n"
            '    "cultural group": "Québécois",\n'
            '    "context": "at family dinners",\n'
            '    "actor": "guests",\n'
            '    "recipient": "hosts",\n'
            '    "relation": "guest to host",\n'
            '    "actor\'s behavior": "bring a bottle of wine",\n'
            '    "goal": null,\n'
            '    "recipient\'s behavior": null,\n'
            '    "other descriptions": "None"\n'
            "}\n"
            'Question: Would most people in the cultural group "Québécois" agree with the behaviour described '
            "above? Answer Yes or No.\n"
            "Answer:"
        ),
    }
    assert item["prompt"] == cb.DIRECT_PROMPT.format(descriptor=cb.descriptor_json(CB_ROW), group="Québécois")
    assert result.report["items"] == 21 and result.report["rows_read"] == 21


def test_culturebank_bad_agreement_quarantined(tmp_path):
    rows = [dict(CB_ROW, agreement=a) for a in ("0.7", "", "n/a", "1.7", "0.2")]
    write_culturebank(tmp_path, "reddit", rows)
    result = get_loader("culturebank")(tmp_path, subsets=("reddit",), split="full")
    assert [i["row"] for i in result.items] == [0, 4]
    assert [(q["row"], q["reason"]) for q in result.quarantine] == [(1, "agreement_invalid"), (2, "agreement_invalid"),
                                                                    (3, "agreement_invalid")]
    assert result.report["quarantined"] == {"agreement_invalid": 3}


def test_culturebank_missing_file_and_column(tmp_path):
    with pytest.raises(FileNotFoundError, match="tiktok/culturebank_tiktok.csv"):
        get_loader("culturebank")(tmp_path)
    path = write_culturebank(tmp_path, "tiktok", [CB_ROW])
    path.write_text(path.read_text(encoding="utf-8").replace("agreement", "norm", 1), encoding="utf-8")
    with pytest.raises(ValueError, match="missing column"):
        get_loader("culturebank")(tmp_path, subsets=("tiktok",))


# ------------------------------------------------------------------------------------- CultureNLI

P1, H1, H2 = "Ravi touched his grandmother's feet.", "Ravi respects his grandmother.", "Ravi is being rude."
P2, H3 = 'Anna said "thank you" to the bus driver.', "Anna is polite."


def culturenli_fixture(tmp_path: Path) -> Path:
    text = (
        "premise\thypothesis\tus_ratings\tin_ratings\n"
        f"{P1}\t{H1}\t['E', 'N', 'N', 'E']\t['C', 'C', 'E']\n"        # 0: US tie E/N -> E (seen first)
        f"{P2}\t{H3}\t['N']\t['E']\n"                                  # 1: replaced by row 3
        f"{P1}\t{H2}\t['N', 'E', 'E', 'N', 'C']\t['C', 'N', 'E']\n"   # 2: US tie N/E -> N; IN 3-way -> C
        f"{P2}\t{H3}\t['C', 'C', 'E']\t['N', 'E', 'N']\n"              # 3: later duplicate: wins
        "a line without tabs\n"                                        # 4: field_count
        f"{P1}\tRavi is tired.\t['E', 'X']\t['E']\n"                  # 5: ratings_invalid
        f"{P1}\t{H1}\t__import__('os')\t['E']\n"                       # 6: unparseable, replaces nothing
        "\n"                                                           # 7: blank
    )
    path = tmp_path / "data.tsv"
    path.write_text(text, encoding="utf-8")
    return path


def test_culturenli_items_dedup_and_ties(tmp_path):
    result = get_loader("culturenli")(culturenli_fixture(tmp_path))
    # nested {premise: {hypothesis}} order: (P1, H1), (P1, H2), (P2, H3); all US, then all IN
    got = [(i["culture"], i["premise"], i["hypothesis"], i["row"], i["gold"]) for i in result.items]
    assert got == [
        ("US", P1, H1, 0, "E"), ("US", P1, H2, 2, "N"), ("US", P2, H3, 3, "C"),
        ("IN", P1, H1, 0, "C"), ("IN", P1, H2, 2, "C"), ("IN", P2, H3, 3, "N"),
    ]
    assert result.items[2]["ratings"] == ["C", "C", "E"]  # the later duplicate's ratings
    assert len({i["item_id"] for i in result.items}) == 6
    frame = result.frame()
    assert len(frame) == 6 and list(frame.columns[:3]) == ["item_id", "benchmark", "pair_id"]
    assert result.items[0]["item_id"] == f"culturenli:{result.items[0]['pair_id']}:US"
    assert result.items[3]["item_id"] == f"culturenli:{result.items[0]['pair_id']}:IN"
    assert [(q["row"], q["reason"]) for q in result.quarantine] == [(4, "field_count"), (5, "ratings_invalid"),
                                                                    (6, "ratings_unparseable")]
    assert result.report == {
        "benchmark": "culturenli", "file": "data.tsv", "rows_read": 7, "blank_lines": 1, "duplicates_replaced": 1,
        "empty_fields": {"premise": 0, "hypothesis": 0}, "pairs": 3, "items": 6,
        "gold_counts": {"US": {"E": 1, "N": 1, "C": 1}, "IN": {"E": 0, "N": 1, "C": 2}},
        "quarantined": {"field_count": 1, "ratings_invalid": 1, "ratings_unparseable": 1},
    }


def test_culturenli_prompt_byte_exact(tmp_path):
    result = get_loader("culturenli")(culturenli_fixture(tmp_path), cultures=("IN",))
    item = result.items[0]
    expected = (
        "Premise: Ravi touched his grandmother's feet.\n"
        "  Hypothesis: Ravi respects his grandmother.\n"
        "\n"
        "  Let\u2019s think as someone who lives in India. What do you think is the relationship between the "
        "premise and the hypothesis?\n"
        "  (E) Entail \n"
        "  (N) Neutral\n"
        "  (C) Contradict\n"
        "\n"
        "  Your Answer (E/N/C): ("
    )
    assert item["prompt"] == expected
    raw = item["prompt"].encode("utf-8")
    assert b"Let\xe2\x80\x99s" in raw and b"(E) Entail \n" in raw and b"\n  Hypothesis:" in raw
    assert (item["culture"], item["culture_name"], item["labels"]) == ("IN", "India", ["E", "N", "C"])
    us = get_loader("culturenli")(tmp_path).items[0]
    assert "lives in the United States. What" in us["prompt"]
    quoted = [i for i in result.items if i["premise"] == P2][0]
    assert quoted["prompt"].startswith('Premise: Anna said "thank you" to the bus driver.\n')


def test_majority_label_first_seen():
    assert majority_label(["N", "E", "E", "N"]) == "N"
    assert majority_label(["E", "N", "N", "E"]) == "E"
    assert majority_label(["C", "N", "E"]) == "C"
    assert majority_label(["C", "E", "E"]) == "E"


def test_culturenli_keeps_rows_with_empty_text_as_the_reference_does(tmp_path):
    # the reference keys items by (premise, hypothesis) and keeps every row whose ratings parse, empty text
    # included: such rows are items here too (counted in the report); unparseable ratings stay quarantined
    path = tmp_path / "data.tsv"
    path.write_text(
        "premise\thypothesis\tus_ratings\tin_ratings\n"
        f"{P1}\t{H1}\t['E', 'E', 'N']\t['N']\n"     # 0: US gold E
        f"{P1}\t\t['E', 'E']\t['N']\n"              # 1: empty hypothesis, US gold E
        f"\t{H2}\t['C', 'N', 'C']\t['N']\n"         # 2: empty premise, US gold C
        f"{P2}\t{H3}\t['N', 'N', 'E']\t['N']\n"     # 3: US gold N
        f"{P2}\tAnna is tired.\t['E', 'C', 'E']\t['N']\n"  # 4: US gold E
        f"{P2}\t   \t['E']\t['E'\n",                 # 5: blank hypothesis but IN ratings do not parse
        encoding="utf-8")
    result = get_loader("culturenli")(path, cultures=("US",))
    assert [(q["row"], q["reason"]) for q in result.quarantine] == [(5, "ratings_unparseable")]
    assert result.report["empty_fields"] == {"premise": 1, "hypothesis": 1}  # the quarantined row is not counted
    assert result.report["pairs"] == 5 and result.report["quarantined"] == {"ratings_unparseable": 1}
    items = result.items
    assert [(i["row"], i["gold"]) for i in items] == [(0, "E"), (1, "E"), (2, "C"), (3, "N"), (4, "E")]
    assert items[1]["hypothesis"] == "" and "\n  Hypothesis: \n" in items[1]["prompt"]
    assert items[2]["premise"] == "" and items[2]["prompt"].startswith("Premise: \n  Hypothesis: ")
    # the metric, by hand: gold entail = [1, 1, 0, 0, 1]; model P(E) = .95 .85 .65 .75 .55
    #   t=.6: pred 1 1 1 1 0 -> F1(E) = 2*2/(4+2+1) = 4/7, F1(rest) = 0           -> 2/7
    #   t=.7: pred 1 1 0 1 0 -> F1(E) = 4/(4+1+1) = 2/3, F1(rest) = 2/(2+1+1) = 1/2 -> 7/12
    #   t=.8: pred 1 1 0 0 0 -> F1(E) = 4/(4+0+1) = 4/5, F1(rest) = 4/(4+1+0) = 4/5 -> 0.8 (the best)
    #   t=.9: pred 1 0 0 0 0 -> F1(E) = 2/(2+0+2) = 1/2, F1(rest) = 4/(4+2+0) = 2/3 -> 7/12
    #   t=1.: pred 0 0 0 0 0 -> F1(E) = 0, F1(rest) = 4/(4+3) = 4/7                 -> 2/7
    # (dropping rows 1 and 2, as before, would score 2/3 at t=.8 on the three rows left)
    from alpha.eval import metrics

    frame = result.frame().assign(p_entail=[0.95, 0.85, 0.65, 0.75, 0.55])
    r = metrics.get_metric("culturenli_macro_f1")(frame[["premise", "hypothesis", "ratings", "p_entail"]])
    assert r.details["f1_by_threshold"] == pytest.approx({0.6: 2 / 7, 0.7: 7 / 12, 0.8: 0.8, 0.9: 7 / 12, 1.0: 2 / 7})
    assert r.value == pytest.approx(0.8) and r.details["best_threshold"] == 0.8
    assert r.n_items == 5 and r.details["n_duplicates_replaced"] == 0
    assert (r.details["n_entail"], r.details["n_rest"]) == (3, 2)


def test_culturenli_bad_header(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("premise,hypothesis,us_ratings,in_ratings\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header"):
        get_loader("culturenli")(path)


# ------------------------------------------------------------------------------------------ demo


def read_all(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_demo_layout_and_determinism(tmp_path):
    write_demo_benchmarks(tmp_path / "a", seed=3)
    write_demo_benchmarks(tmp_path / "b", seed=3)
    write_demo_benchmarks(tmp_path / "c", seed=4)
    a, b, c = read_all(tmp_path / "a"), read_all(tmp_path / "b"), read_all(tmp_path / "c")
    assert sorted(a) == ["culturebank/reddit/culturebank_reddit.csv", "culturebank/tiktok/culturebank_tiktok.csv",
                         "culturenli/data.tsv", "globalopinionqa/global_opinions.csv"]
    assert a == b
    assert all(a[k] != c[k] for k in a)


def test_demo_round_trip(tmp_path):
    summary = write_demo_benchmarks(tmp_path, seed=11)

    g_sum = summary["globalopinionqa"]
    g = get_loader("globalopinionqa")(g_sum["path"])
    assert g.report["rows_read"] == g_sum["rows"] and g.report["items"] == g_sum["items"]
    assert {q["row"]: q["reason"] for q in g.quarantine} == g_sum["malformed_rows"]
    options = {o for i in g.items for o in i["options"]}
    assert {"DK/Refused", "Don't know", "1", "2.0"} <= options
    assert {"Côte d'Ivoire", "Britain (Non-national sample)"} <= {i["country"] for i in g.items}
    first, again = g_sum["repeated_question_rows"]
    by_row = {i["row"]: i for i in g.items}
    assert by_row[first]["question"] == by_row[again]["question"]
    assert any(abs(sum(i["human"]) - 1.0) > 1e-9 for i in g.items)  # raw selections, not renormalised

    c = get_loader("culturebank")(tmp_path / "culturebank")
    for subset, part in summary["culturebank"].items():
        n = part["rows"]
        assert c.report["subsets"][subset] == {"file": f"{subset}/culturebank_{subset}.csv", "rows_read": n,
                                               "split_rows": n - 9 * n // 10, "items": n - 9 * n // 10}
    assert c.quarantine == [] and len({i["item_id"] for i in c.items}) == len(c.items)
    full = get_loader("culturebank")(tmp_path / "culturebank", split="full")
    assert 0.5 in {i["agreement"] for i in full.items}
    assert all(i["target"] == (i["agreement"] > 0.5) for i in full.items)

    n_sum = summary["culturenli"]
    n = get_loader("culturenli")(n_sum["path"])
    assert n.report["rows_read"] == n_sum["rows"] and n.report["pairs"] == n_sum["pairs"]
    assert n.report["duplicates_replaced"] == len(n_sum["duplicates"]) == 3 and n.quarantine == []
    assert n.report["items"] == 2 * n_sum["pairs"]
    items = {(i["premise"], i["hypothesis"], i["culture"]): i for i in n.items}
    for (p, h), (us, india) in n_sum["duplicates"].items():
        assert items[(p, h, "US")]["ratings"] == us and items[(p, h, "IN")]["ratings"] == india
    for (p, h), (us_gold, in_gold) in n_sum["ties"].items():
        assert (items[(p, h, "US")]["gold"], items[(p, h, "IN")]["gold"]) == (us_gold, in_gold)
    assert any('"' in i["premise"] for i in n.items)
