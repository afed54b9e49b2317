"""Answer generation: prompts in the model's chat template, batched greedy decoding.

Prompts are left-padded so a batch decodes together with the KV cache; greedy decoding keeps the
answers deterministic, so a grid cell scores the same on every run. :func:`generate` is the
transformers engine; :mod:`components.llm.engines` picks it or vLLM, and the precision, from params.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from components.config import GenerationConfig, PromptConfig
from components.progress import Progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generation:
    answer: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float  # the batch's wall time divided by its size (a throughput share, not a query's latency)
    hit_cap: bool = False  # the answer was cut at max_new_tokens: it may be incomplete


def user_message(prompts: PromptConfig, question: str, contexts: list[str] | None) -> str:
    """The user turn: closed-book, or with the retrieved passages numbered in rank order."""
    if contexts is None:
        return prompts.closed_book.format(question=question)
    context = "\n\n".join(f"[{i}] {text}" for i, text in enumerate(contexts, start=1))
    return prompts.with_context.format(question=question, context=context)


def chat_prompt(
    tokenizer, system: str, user: str, answer: str | None = None, examples: Sequence[tuple[str, str]] = ()
) -> str:
    """Render one exchange with the model's chat template (generation prompt when no answer).

    ``examples`` are earlier (user, assistant) turns shown first: the few-shot examples.
    """
    messages = [{"role": "system", "content": system}]
    for question, reply in examples:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
    messages.append({"role": "user", "content": user})
    if answer is None:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    messages.append({"role": "assistant", "content": answer})
    return tokenizer.apply_chat_template(messages, tokenize=False)


def few_shot_turns(prompts: PromptConfig, qa_train, k: int, seed: int) -> list[tuple[str, str]]:
    """``k`` train-split pairs as closed-book (question, first answer) turns, chosen by ``seed``.

    The same examples precede every question; they come from train, so no evaluated question is shown.
    """
    if len(qa_train) < k:
        raise ValueError(f"few-shot prompts need {k} train questions, the train split has {len(qa_train)}")
    picked = qa_train.sort_values("qa_id").sample(n=k, random_state=seed)
    return [
        (user_message(prompts, q, None), list(a)[0]) for q, a in zip(picked["question"], picked["answers"], strict=True)
    ]


def answer_cap(answers: Sequence[str], tokenizer, cfg: GenerationConfig) -> int:
    """The answer cap: the ``cap_percentile`` of the answers' length in tokens, +2 (the end of the answer),
    within [``min_new_tokens``, ``max_new_tokens``]."""
    import numpy as np

    if not answers:
        return cfg.max_new_tokens
    lengths = [len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers]
    cap = int(np.ceil(np.percentile(lengths, cfg.cap_percentile))) + 2
    return max(cfg.min_new_tokens, min(cfg.max_new_tokens, cap))


def clean_answer(text: str) -> str:
    """The first non-empty line of a completion, stripped."""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


@torch.inference_mode()
def generate(
    model, tokenizer, prompts: list[str], cfg: GenerationConfig, on_batch: Callable[[int], None] | None = None
) -> list[Generation]:
    """Greedy answers for rendered prompts, in batches of ``cfg.batch_size``, on the model's device.

    Prompts are batched in length order (less padding), so any run of whole batches of that order
    answers the same when generated on its own (the grid's split relies on it). ``on_batch`` is
    told the size of each batch done (the caller shows the progress); without it a bar of its own.
    """
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # less padding per batch
    by_index: dict[int, Generation] = {}
    progress = Progress(len(prompts), "generate", "answers", enabled=bool(prompts) and on_batch is None)
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        batch = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(model.device)
        t0 = time.perf_counter()
        out = model.generate(
            **batch,
            max_new_tokens=cfg.max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        per_item = (time.perf_counter() - t0) / len(idx)
        new_tokens = out[:, batch["input_ids"].shape[1] :]
        for row, i in enumerate(idx):
            completion = new_tokens[row]
            n_completion = int((completion != tokenizer.pad_token_id).sum())
            by_index[i] = Generation(
                answer=clean_answer(tokenizer.decode(completion, skip_special_tokens=True)),
                prompt_tokens=int(batch["attention_mask"][row].sum()),
                completion_tokens=n_completion,
                latency_s=per_item,
                hit_cap=n_completion >= cfg.max_new_tokens,
            )
        progress.update(len(idx))
        if on_batch is not None:
            on_batch(len(idx))
    progress.close()  # the closing line: answers, seconds, answers/s
    return [by_index[i] for i in range(len(prompts))]
