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
