import re

import pytest

from components.config import RetrieverConfig
from components.retrieval.search import RERANKERS, SEARCH_MODES, Hit, rrf_fuse


def _hits(*chunk_ids: str) -> list[Hit]:
    return [Hit(c, c.split("#")[0], f"text of {c}", 0.0) for c in chunk_ids]


def test_rrf_on_hand_made_lists():
    vector = _hits("a#0", "b#0", "c#0")
    fulltext = _hits("c#0", "a#0", "d#0")
    fused = rrf_fuse([vector, fulltext], k=60)
    # a: 1/61 + 1/62, c: 1/63 + 1/61, b: 1/62, d: 1/63
    assert [h.chunk_id for h in fused] == ["a#0", "c#0", "b#0", "d#0"]
    assert fused[0].score == 1 / 61 + 1 / 62
    assert fused[1].score == 1 / 63 + 1 / 61
    assert [h.doc_id for h in fused] == ["a", "c", "b", "d"]


def test_rrf_k_trades_a_single_top_rank_against_agreement():
    # a: rank 1 (vector) and 20 (full-text); b: rank 3 in both
    vector = _hits("a#0", "x#0", "b#0")
    fulltext = _hits("y1#0", "y2#0", "b#0", *(f"y{i}#0" for i in range(4, 20)), "a#0")

    def order(k: int) -> list[str]:
        return [h.chunk_id for h in rrf_fuse([vector, fulltext], k=k) if h.chunk_id in ("a#0", "b#0")]

    assert order(1) == ["a#0", "b#0"]  # k=1: a = 1/2 + 1/21 = 0.548 > b = 2/4 = 0.5
    assert order(60) == ["b#0", "a#0"]  # k=60: a = 1/61 + 1/80 = 0.0289 < b = 2/63 = 0.0317


def test_rrf_ties_are_broken_deterministically():
    # a and b both score 1/61 and are both rank 1: b wins, being in the earlier list
    assert [h.chunk_id for h in rrf_fuse([_hits("b#0"), _hits("a#0")], k=60)] == ["b#0", "a#0"]
    # z and y both score 1/62 at rank 2 in different lists: same rule
    fused = rrf_fuse([_hits("b#0", "z#0"), _hits("a#0", "y#0")], k=60, limit=3)
    assert [h.chunk_id for h in fused] == ["b#0", "a#0", "z#0"]
    # equal score and equal best rank in the same list cannot happen, chunk id breaks what is left


def test_rrf_counts_a_chunk_once_per_list_and_respects_limit():
    fused = rrf_fuse([_hits("a#0", "a#0", "b#0")], k=60)
    assert [h.chunk_id for h in fused] == ["a#0", "b#0"]
    assert fused[1].score == 1 / 63  # b keeps its rank in the list
    assert len(rrf_fuse([_hits("a#0", "b#0", "c#0")], limit=2)) == 2
    assert rrf_fuse([], k=60) == []


def test_every_configurable_mode_and_reranker_has_a_strategy():
    modes = RetrieverConfig.model_fields["mode"].annotation.__args__
    assert set(SEARCH_MODES) == set(modes)
    assert set(RERANKERS) == {"none"}


@pytest.mark.parametrize("pin", ["chunks__para_400__minilm", "t=", "=3", "t=x", "t=-1", "t=1.5"])
def test_a_bad_table_pin_is_refused_naming_it(pin):
    from components.retrieval.open import parse_versions

    with pytest.raises(ValueError, match=f"expected TABLE=VERSION.*{re.escape(pin)}"):
        parse_versions([pin])


def test_table_pins_parse_to_versions():
    from components.retrieval.open import parse_versions

    assert parse_versions(["a=4", "b=0"]) == {"a": 4, "b": 0}
