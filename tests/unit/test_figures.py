"""The figures: PNGs are written, byte-identical across calls; Figure 2's ads are chosen as configured."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alpha.ads import census as C
from alpha.ads import figures as F
from alpha.correlation import figures as corr_figures
from alpha.correlation import summary as correlation_summary
from alpha.eval import figures as eval_figures

ROOT = Path(__file__).resolve().parents[2]
CENSUS_DIR = ROOT / "config" / "census"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def census():
    return C.load_census(CENSUS_DIR / "census2020_state_population.csv", CENSUS_DIR / "census2020_sex_age.csv",
                         CENSUS_DIR / "pr_municipios.csv")


def ad(ad_id, impressions, body="Learn Illustrator: save $20 today [URL]", regions=None):
    regions = regions or [("California", 0.16), ("New York", 0.1), ("Texas", 0.09), ("Utah", 0.05),
                          ("Oregon", 0.04), ("Unknown", 0.02), ("San Juan", 0.01)]
    demo = [("18-24", "female", 0.2), ("25-34", "female", 0.2), ("18-24", "male", 0.25), ("25-34", "male", 0.2),
            ("65+", "female", 0.05), ("13-17", "female", 0.05), ("35-44", "unknown", 0.05)]
    return {
        "ad_id": ad_id,
        "page_id": "900",
        "page_name": "Adobe Gen Create",
        "body": body,
        "currency": "USD",
        "spend_lower": 100,
        "spend_upper": 199,
        "impressions_lower": impressions,
        "impressions_upper": None,
        "demo_age": [a for a, _, _ in demo],
        "demo_gender": [g for _, g, _ in demo],
        "demo_share": [s for _, _, s in demo],
        "region_name": [r for r, _ in regions],
        "region_share": [s for _, s in regions],
        "snapshot_url": f"https://www.facebook.com/ads/archive/render_ad/?id={ad_id}",
    }


@pytest.fixture
def ads_parquet(tmp_path):
    rows = [ad("10", 5000), ad("11", 90000), ad("12", 90000), ad("13", 1000), ad("14", None), ad("15", 70000),
            ad("16", 3000, regions=[("New South Wales", 1.0)]), ad("15", 60000)]  # 15 twice (unmerged dump)
    path = tmp_path / "ads.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=2)  # several row groups / batches
    return path


def test_png_written_and_byte_identical(tmp_path, census):
    row = ad("42", 1000, body="Save $5 and $10 " * 20)  # "$" must not start mathtext
    info = F.plot_delivery(row, census, tmp_path / "a.png")
    F.plot_delivery(row, census, tmp_path / "b.png")
    data = (tmp_path / "a.png").read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    assert data == (tmp_path / "b.png").read_bytes()
    assert b"Software" not in data and b"render_ad" not in data
    assert info["census_status"] == "ok" and info["states_ranked"] == 6  # 5 states + Puerto Rico


def test_no_denominator_ad_still_plots(tmp_path, census):
    info = F.plot_delivery(ad("7", 10, regions=[("New South Wales", 1.0)]), census, tmp_path / "au.png")
    assert info["census_status"] == "no_denominator" and info["states_ranked"] == 0
    assert (tmp_path / "au.png").read_bytes().startswith(PNG_MAGIC)


def test_auto_selection_picks_largest_impressions(tmp_path, census, ads_parquet):
    # 11 and 12 tie at 90,000 (→ ad_id order), then 15 at 70,000; a null impressions_lower ranks last.
    assert F.top_ads_by_impressions(ads_parquet, 3, batch_rows=2) == ["11", "12", "15"]
    assert F.top_ads_by_impressions(ads_parquet, 9, batch_rows=3) == ["11", "12", "15", "10", "16", "13", "14"]
    index = F.plot_delivery_figures(ads_parquet, census, [], 3, tmp_path / "out")
    assert index["selection"] == "auto"
    assert [e["ad_id"] for e in index["figures"]] == ["11", "12", "15"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["11.png", "12.png", "15.png", "index.json"]
    on_disk = json.loads((tmp_path / "out" / "index.json").read_text())
    assert on_disk == index
    assert "snapshot" not in json.dumps(on_disk)


def test_explicit_ids_and_unknown_id(tmp_path, census, ads_parquet):
    index = F.plot_delivery_figures(ads_parquet, census, ["16", "10", "16"], 5, tmp_path / "out")
    assert index["selection"] == "explicit"
    assert [(e["ad_id"], e["file"]) for e in index["figures"]] == [("16", "16.png"), ("10", "10.png")]
    assert index["figures"][0]["census_status"] == "no_denominator"
    with pytest.raises(ValueError, match="999"):
        F.plot_delivery_figures(ads_parquet, census, ["10", "999"], 5, tmp_path / "bad")


def test_figure_folder_is_deterministic(tmp_path, census, ads_parquet):
    F.plot_delivery_figures(ads_parquet, census, [], 2, tmp_path / "a")
    F.plot_delivery_figures(ads_parquet, census, [], 2, tmp_path / "b")
    for name in ("11.png", "12.png", "index.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_table_figure_shades_lower_is_better_columns_and_is_deterministic(tmp_path):
    cells = {"A": {"GSS Representativeness": {"value": 0.5}, "GlobalOpinionQA Skew": {"value": 0.02}},
             "B": {"GSS Representativeness": {"value": 0.7}, "GlobalOpinionQA Skew": {"value": None}}}
    sidecar = {"models": ["A", "B"], "columns": ["Model", "GSS Representativeness", "GSS Steerability", "GlobalOpinionQA Skew"],
               "cells": cells, "scale": 100, "variants": {"ordinal_wd": "reference"}}
    assert "GlobalOpinionQA Skew" in eval_figures.LOWER_IS_BETTER
    eval_figures.plot_table(sidecar, tmp_path / "one.png")
    eval_figures.plot_table(sidecar, tmp_path / "sub" / "two.png")
    data = (tmp_path / "one.png").read_bytes()
    assert data.startswith(PNG_MAGIC) and b"Software" not in data
    assert data == (tmp_path / "sub" / "two.png").read_bytes()


def test_correlation_figures_are_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    groups = {"regions": ["Midwest", "Northeast", "South", "West"], "age_gender": ["Female 18-29", "Male 18-29", "Male 65+"]}
    behaviour = {k: pd.DataFrame(rng.random((len(g), len(g))), index=g, columns=g) for k, g in groups.items()}
    opinion = {k: pd.DataFrame(rng.random((len(g), len(g))), index=g, columns=g) for k, g in groups.items()}
    behaviour["age_gender"].iloc[0, 1] = np.nan  # an undefined similarity stays unannotated
    summary = correlation_summary.summarise(behaviour, opinion, n_boot=20, seed=1)
    for run in ("a", "b"):
        corr_figures.plot_similarity_heatmaps(behaviour["age_gender"], opinion["age_gender"], "Age x gender", tmp_path / run / "heat.png")
        corr_figures.plot_correlation_scatter(summary, tmp_path / run / "scatter.png")
    for name in ("heat.png", "scatter.png"):
        data = (tmp_path / "a" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and b"Software" not in data
        assert data == (tmp_path / "b" / name).read_bytes()
