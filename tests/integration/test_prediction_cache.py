import pandas as pd

from components.evaluation.answer import answer_cell
from components.evaluation.metrics import load_metric
from components.io import dir_hash
from components.llm.generation import Generation
from components.llm.models import load_model, load_tokenizer
from components.llm.prediction_cache import PredictionCache


def _fake_answers(calls: list[list[str]]):
    def run(prompts: list[str]) -> list[Generation]:
        calls.append(prompts)
        return [Generation(answer=p.upper(), prompt_tokens=len(p), completion_tokens=1, latency_s=0.5) for p in prompts]

    return run


def test_only_misses_are_generated_and_scope_changes_miss(tmp_path):
    calls: list[list[str]] = []
    cache = PredictionCache(tmp_path, {"model": "m", "adapter": "none"})
    first = cache.generate(["a", "b"], _fake_answers(calls))
    again = PredictionCache(tmp_path, {"model": "m", "adapter": "none"}).generate(["b", "c", "a"], _fake_answers(calls))
    assert calls == [["a", "b"], ["c"]]
    assert [g.answer for g in again] == ["B", "C", "A"] and again[2] == first[0]
    other = PredictionCache(tmp_path, {"model": "m", "adapter": "abc"})
    other.generate(["a"], _fake_answers(calls))
    assert calls[-1] == ["a"] and other.generated == 1


def test_content_hash_follows_the_bytes(tmp_path):
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights")
    before = dir_hash(tmp_path)
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights2")
    assert dir_hash(tmp_path) != before


def test_second_evaluation_of_an_unchanged_cell_generates_nothing(tmp_path, params, base_model_dir):
    cfg = params.evaluation.model_copy(
        update={"generation": params.evaluation.generation.model_copy(update={"max_new_tokens": 4})}
    )
    questions = pd.DataFrame(
        {
            "qa_id": ["q1", "q2"],
            "question": ["What is the capital of France?", "Name a colour."],
            "answers": [["Paris"], ["red"]],
        }
    )
    model, tokenizer = load_model(base_model_dir), load_tokenizer(base_model_dir)
    metrics = {"qa_match": load_metric("qa_match").compute}
    scope = {"model": "base", "generation": cfg.generation.model_dump()}
    first_cache, second_cache = PredictionCache(tmp_path, scope), PredictionCache(tmp_path, scope)
    first = answer_cell(model, tokenizer, questions, None, cfg.prompts, cfg.generation, metrics, cache=first_cache)
    second = answer_cell(model, tokenizer, questions, None, cfg.prompts, cfg.generation, metrics, cache=second_cache)
    assert first_cache.generated == 2 and second_cache.generated == 0
    pd.testing.assert_frame_equal(first, second)


def test_answers_of_one_precision_are_not_served_for_another(tmp_path, params, base_model_dir, monkeypatch):
    """``generation.dtype: auto`` resolves by machine (bfloat16 on a CPU with bf16 in hardware): a cache filled in
    float32 must miss when the same prompts are answered in bfloat16, and hit again in float32."""
    from components.evaluation.grid import Cell
    from components.evaluation.run import GridSetup, _plan
    from components.llm import engines

    setup = GridSetup(
        base_dir=base_model_dir, adapter_dirs={}, adapters={}, prompts=params.evaluation.prompts,
        generation=params.evaluation.generation, examples=[], model_info={"name": "m", "source": "s"}, training={},
        cache_dir=tmp_path, similarity_model=None, latency_questions=1, parallel=params.evaluation.parallel, store=None,
    )  # fmt: skip
    questions = pd.DataFrame({"qa_id": ["q1", "q2"], "question": ["Capital of France?", "A colour?"]})
    cells, tokenizer = [Cell("base", "none", 0)], load_tokenizer(base_model_dir)

    def missing(precision: str) -> int:
        monkeypatch.setattr(engines, "machine_precision", lambda cfg: precision)
        plans, _ = _plan(cells, questions, {}, setup, tokenizer)
        plan = plans["base+none"]
        todo = [plan.prompts[i] for i in plan.order]
        plan.cache.store(todo, _fake_answers([])(todo))
        return len(plan.order)

    assert missing("float32") == 2
    assert missing("bfloat16") == 2
    assert missing("float32") == 0
