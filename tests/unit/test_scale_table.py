"""tests/bench/scale.py (make scale): the per-rule costs read from benchmark files, and the growth table."""
import math

import pytest

from bench import scale


def _bench(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    path.write_text(header + "".join(f"{s}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t90\t{cpu}\n" for s, rss, cpu in rows))


def test_rule_costs_sum_time_over_jobs_and_keep_the_largest_rss(tmp_path):
    _bench(tmp_path / "benchmarks/mine_pairs/0.tsv", [(2.0, 300.5, 1.5)])
    _bench(tmp_path / "benchmarks/mine_pairs/1.tsv", [(3.0, 250.0, 2.5)])
    _bench(tmp_path / "benchmarks/embed_ads.tsv", [(10.0, 900.0, "NA")])
    costs = scale.rule_costs(tmp_path)
    assert costs["mine_pairs"] == {"jobs": 2, "s": 5.0, "cpu_s": 4.0, "max_rss_mb": 300.5}
    assert costs["embed_ads"]["jobs"] == 1 and math.isnan(costs["embed_ads"]["cpu_s"])


def test_slope_is_the_log_log_growth():
    assert scale.slope(10.0, 100.0, 1_000, 10_000) == pytest.approx(1.0)
    assert scale.slope(10.0, 40.0, 1_000, 2_000) == pytest.approx(2.0)
    assert math.isnan(scale.slope(0.0, 1.0, 1, 2))


def test_table_reports_slopes_against_each_rules_driver():
    def run(n, pairs, t_embed, t_mine, rss):
        counts = {"ads": n, "pages": n // 20, "largest_page": 40, "distinct_bodies": n // 2, "candidate_pairs": pairs,
                  "mined_pairs": pairs // 10, "samples": 5 * n, "shard_rows": 5 * n, "external": 200}
        rules = {"embed_ads": {"jobs": 1, "s": t_embed, "cpu_s": t_embed, "max_rss_mb": rss},
                 "mine_pairs": {"jobs": 4, "s": t_mine, "cpu_s": t_mine, "max_rss_mb": 100.0}}
        return {"n_ads": n, "wall_s": t_embed + t_mine, "counts": counts, "rules": rules}

    text = scale.table([run(1000, 10_000, 10.0, 1.0, 500.0), run(10_000, 1_000_000, 100.0, 100.0, 600.0)])
    embed = next(line for line in text.splitlines() if line.startswith("| embed_ads |"))
    mine = next(line for line in text.splitlines() if line.startswith("| mine_pairs |"))
    assert "| distinct_bodies |" in embed and "| 1.00 |" in embed and "1.20×" in embed  # linear in bodies; RSS 600 / 500
    assert "| candidate_pairs |" in mine and "| 1.00 |" in mine and "(4 jobs)" in mine  # linear in pairs, not ads
    assert "| distinct_bodies | 500 | 5,000 |" in text
