import pytest

from components.llm.generation import chat_prompt, clean_answer, generate, user_message
from components.llm.models import load_model, load_tokenizer
from tests.conftest import PARAMS, like


def test_user_message_numbers_the_contexts(params):
    prompts = params.evaluation.prompts
    assert user_message(prompts, "Q?", None) == prompts.closed_book.format(question="Q?")
    msg = user_message(prompts, "Q?", ["first", "second"])
    assert "[1] first\n\n[2] second" in msg and "Q?" in msg


def test_clean_answer_keeps_the_first_line():
    assert clean_answer("\n  BOL \nExplanation follows") == "BOL"
    assert clean_answer("   ") == ""


@pytest.mark.parametrize("batch_size", [1, 4])
def test_greedy_generation_is_batch_invariant_and_answers(base_model_dir, params, batch_size):
    tokenizer = load_tokenizer(base_model_dir)
    model = load_model(base_model_dir)
    questions = ["What is the capital of France?", "What is 2 plus 2?", "Name a colour."]
    prompts = [
        chat_prompt(tokenizer, params.evaluation.prompts.system, user_message(params.evaluation.prompts, q, None))
        for q in questions
    ]
    out = generate(
        model,
        tokenizer,
        prompts,
        like(PARAMS.evaluation.generation, max_new_tokens=12, min_new_tokens=4, batch_size=batch_size),
    )
    assert "Paris" in out[0].answer
    assert all(g.completion_tokens > 0 and g.prompt_tokens > 10 for g in out)
    reference = generate(
        model, tokenizer, prompts, like(PARAMS.evaluation.generation, max_new_tokens=12, min_new_tokens=4, batch_size=1)
    )
    assert [g.answer for g in out] == [g.answer for g in reference]


def test_vllm_is_asked_what_transformers_answers_and_its_rows_are_counted_alike(base_model_dir, params, tmp_path):
    """The vLLM path without vLLM (no GPU here): the requests carry the transformers engine's token ids,
    greedy, capped, with the adapter as a LoRA request; the same completion tokens make the same row."""
    import torch

    from components.llm.engines import LoraSpec, lora_rank, vllm_generations, vllm_requests
    from tests.e2e.grid_probe import random_adapter

    tokenizer, model = load_tokenizer(base_model_dir), load_model(base_model_dir)
    cfg = like(PARAMS.evaluation.generation, max_new_tokens=4, min_new_tokens=4, batch_size=1)
    prompts = [
        chat_prompt(tokenizer, params.evaluation.prompts.system, user_message(params.evaluation.prompts, q, None))
        for q in ["What is the capital of France?", "Tell me a long story about the sea."]
    ]
    lora = LoraSpec("adapter-1", 1, str(tmp_path / "a"))
    requests = vllm_requests(tokenizer, prompts, cfg, lora)
    for prompt, request in zip(prompts, requests, strict=True):
        fed = tokenizer([prompt], return_tensors="pt", add_special_tokens=False)["input_ids"][0].tolist()
        assert request.prompt_token_ids == fed  # the ids transformers.generate gets for this prompt
        assert (request.temperature, request.max_tokens, request.lora) == (0.0, 4, lora)  # greedy, capped

    reference = generate(model, tokenizer, prompts, cfg)
    completions = []
    for request in requests:  # what a greedy vLLM answers: the same tokens
        ids = torch.tensor([request.prompt_token_ids])
        out = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        completions.append(out[0, ids.shape[1] :].tolist())
    texts = [tokenizer.decode(c, skip_special_tokens=True) for c in completions]
    rows = vllm_generations(tokenizer, requests, completions, texts, per_item=0.1)
    for row, ref in zip(rows, reference, strict=True):
        assert (row.answer, row.prompt_tokens, row.completion_tokens, row.hit_cap) == (
            ref.answer,
            ref.prompt_tokens,
            ref.completion_tokens,
            ref.hit_cap,
        )
    assert any(r.hit_cap for r in rows)  # the long story is cut at the cap, and says so

    assert lora_rank([random_adapter(base_model_dir, tmp_path / "r4")]) == 8  # r=4, rounded up to vLLM's 8
    assert lora_rank([]) == 8
