"""Property-based fuzzing of the ingestion over every reader (JSON Lines with current and legacy names,
API JSON pages, single-object JSON, CSV with side tables, wide CSV): fields missing, types swapped,
nulls nested, huge and negative numbers, percentages in every notation, unicode and control
characters, truncated lines, duplicated ids, an access_token in every URL field. The invariants are
listed in tests/fuzz/invariants.py. CI runs a bounded, deterministic number of examples;
`make fuzz` runs the same generator on at least 100,000 records (tests/fuzz/fuzz_ingest.py)."""
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.ad_records import LAYOUTS, HypothesisSource, gen_corpus
from fuzz.invariants import check_corpus

CI = settings(max_examples=50, deadline=None, derandomize=True, database=None, print_blob=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])


@st.composite
def corpora(draw, layouts: tuple[str, ...], records_per_file: int):
    return gen_corpus(HypothesisSource(draw), records_per_file, layouts)


def check(corpus) -> None:
    with tempfile.TemporaryDirectory() as folder:
        findings, stats = check_corpus(corpus, Path(folder))
    assert not findings, "\n".join(map(str, findings))
    assert stats["records"] > 0


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_reader_holds_the_invariants(layout):
    """Two dumps of the layout, merged (ids repeat across them)."""

    @CI
    @given(corpora((layout, layout), 8))
    def run(corpus):
        check(corpus)

    run()


@settings(CI, max_examples=80)
@given(corpora(LAYOUTS, 5))
def test_every_reader_then_the_merge_hold_the_invariants(corpus):
    check(corpus)
