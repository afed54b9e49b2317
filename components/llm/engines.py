"""Generation engines: transformers everywhere, vLLM on a GPU when it is installed.

``params/evaluation.yaml`` ``generation.engine`` asks for one and ``generation.dtype`` for the
precision. Both engines get the same rendered prompts (the same token ids) and decode greedily,
and both return :class:`~components.llm.generation.Generation` rows with the answer cut the same
way, so the grid's metrics read them alike. ``vllm`` falls back to transformers, with a log line
saying why, when vLLM is not installed or no GPU is present. ``auto`` precision is bfloat16 on a
GPU that supports it (float16 on older ones) and float32 on CPU.

The grid hands a loaded model to :func:`generate` (the transformers model with its adapter merged);
vLLM is started from that model's weights, saved once to a temporary folder, so an adapter cell
answers with exactly the weights the transformers engine would use. One vLLM engine is kept at a
time: a new model closes the previous one (the grid loads each model once, cells of a model adjacent).
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass

from components.config import GenerationConfig
from components.llm.generation import Generation, clean_answer
from components.llm.generation import generate as generate_transformers
from components.progress import Progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Choice:
    engine: str  # the engine that runs: transformers or vllm
    dtype: str  # the precision it runs in
    reason: str  # why, when it differs from what was asked ("" otherwise)


def choose(cfg: GenerationConfig, vllm_installed: bool, gpu: bool, gpu_bf16: bool) -> Choice:
    """The engine and precision for ``cfg`` on a machine with (or without) vLLM and a GPU."""
    dtype = cfg.dtype
    if dtype == "auto":
        dtype = ("bfloat16" if gpu_bf16 else "float16") if gpu else "float32"
    if cfg.engine == "transformers":
        return Choice("transformers", dtype, "")
    if not vllm_installed:
        return Choice("transformers", dtype, "vllm is not installed (pip install vllm on a GPU host)")
    if not gpu:
        return Choice("transformers", dtype, "no GPU is visible (vLLM needs one)")
    return Choice("vllm", dtype, "")


def machine_choice(cfg: GenerationConfig) -> Choice:
    """:func:`choose` for this machine, with a log line when vLLM was asked for but cannot run."""
    import torch

    gpu = torch.cuda.is_available()
    choice = choose(cfg, importlib.util.find_spec("vllm") is not None, gpu, gpu and torch.cuda.is_bf16_supported())
    if choice.reason:
        logger.warning(
            "generation.engine=%s, but %s: falling back to transformers (same prompts, same answers format)",
            cfg.engine,
            choice.reason,
        )
    return choice


def place(model, dtype: str):
    """The model on the GPU (when there is one) in ``dtype``; moved once, in place."""
    import torch

    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    wanted = getattr(torch, dtype)
    if model.device != device or model.dtype != wanted:
        logger.info("generation on %s in %s", device, dtype)
        model.to(device=device, dtype=wanted)
    return model


def generate(model, tokenizer, prompts: list[str], cfg: GenerationConfig) -> list[Generation]:
    """Greedy answers for rendered prompts with the engine and precision ``cfg`` selects."""
    choice = machine_choice(cfg)
    if choice.engine == "vllm":
        return _vllm_for(model, tokenizer, choice.dtype).generate(tokenizer, prompts, cfg)
    return generate_transformers(place(model, choice.dtype), tokenizer, prompts, cfg)


class VllmEngine:
    """A vLLM ``LLM`` over a saved copy of one in-memory model; :meth:`close` frees it."""

    def __init__(self, model, tokenizer, dtype: str) -> None:
        from vllm import LLM

        self.folder = tempfile.mkdtemp(prefix="ragtune-vllm-")
        model.save_pretrained(self.folder)
        tokenizer.save_pretrained(self.folder)
        self.llm = LLM(model=self.folder, dtype=dtype, seed=0)

    def generate(self, tokenizer, prompts: list[str], cfg: GenerationConfig) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        params = SamplingParams(temperature=0.0, max_tokens=cfg.max_new_tokens)
        with Progress(len(prompts), "generate (vllm)", "answers", enabled=bool(prompts)) as progress:
            start = time.perf_counter()
            outputs = self.llm.generate([TokensPrompt(prompt_token_ids=i) for i in ids], params, use_tqdm=False)
            per_item = (time.perf_counter() - start) / max(len(prompts), 1)
            progress.update(len(prompts))
        return [
            Generation(
                answer=clean_answer(out.outputs[0].text),
                prompt_tokens=len(i),
                completion_tokens=sum(t != tokenizer.pad_token_id for t in out.outputs[0].token_ids),
                latency_s=per_item,
            )
            for i, out in zip(ids, outputs, strict=True)
        ]

    def close(self) -> None:
        import gc

        del self.llm
        gc.collect()
        shutil.rmtree(self.folder, ignore_errors=True)


_current: dict = {}  # the one live vLLM engine: {"model": weakref to its model, "engine": VllmEngine}


def _vllm_for(model, tokenizer, dtype: str) -> VllmEngine:
    """The vLLM engine of ``model``, started on first use; the previous model's engine is closed."""
    ref = _current.get("model")
    if ref is not None and ref() is model:
        return _current["engine"]
    if "engine" in _current:
        _current.pop("engine").close()
    logger.info("starting vLLM (%s) for %s", dtype, type(model).__name__)
    _current.update(model=weakref.ref(model), engine=VllmEngine(model, tokenizer, dtype))
    return _current["engine"]
