"""Generation engines: transformers everywhere, vLLM on a GPU when it is installed.

``params/evaluation.yaml`` ``generation.engine`` asks for one and ``generation.dtype`` for the
precision. Both engines get the same rendered prompts (the same token ids) and decode greedily,
and both return :class:`~components.llm.generation.Generation` rows with the answer cut and the
tokens counted the same way (``hit_cap`` included), so the grid's metrics read them alike. ``vllm``
falls back to transformers, with a log line saying why, when vLLM is not installed or no GPU is
present. ``auto`` precision is bfloat16 on a GPU that supports it (float16 on older ones), bfloat16
on a CPU that multiplies it natively (x86 AVX512-BF16 or AMX, Arm BF16: about 2.5x the answers per
second of float32 on 2 cores, docs/decision.md), and float32 on any other CPU, where bfloat16 is
emulated and slower.

The grid opens each model variant with :class:`Variant`. With vLLM that is the way vLLM serves
adapters: one engine per process over the base model with ``enable_lora``, each adapter a
``LoRARequest``; the engine is never closed and restarted (vLLM does not hand its GPU memory back
when an engine is deleted). Callers that hold one in-memory model (serving, the drill) use
:func:`generate`, which with vLLM starts one engine over a saved copy of that model.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})  # x86 AVX512-BF16, x86 AMX, Arm BF16


def cpu_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has bfloat16 arithmetic in hardware (a flag of :data:`NATIVE_BF16_FLAGS` in
    ``/proc/cpuinfo``, or in ``cpuinfo`` when given). False where that file cannot be read (not Linux):
    float32 is then used, which is always correct, only slower."""
    if cpuinfo is None:
        return _this_cpu_native_bf16()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, Arm
            flags.update(value.split())
    return bool(flags & NATIVE_BF16_FLAGS)


@functools.cache
def _this_cpu_native_bf16() -> bool:
    """:func:`cpu_native_bf16` of this machine, read once per process (every cell's params ask for it)."""
    try:
        return cpu_native_bf16(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return False


def choose(cfg: GenerationConfig, vllm_installed: bool, gpu: bool, gpu_bf16: bool, cpu_bf16: bool = False) -> Choice:
    """The engine and precision for ``cfg`` on a machine with (or without) vLLM, a GPU, and a CPU with
    native bfloat16 (``cpu_bf16``, :func:`cpu_native_bf16`)."""
    dtype = cfg.dtype
    if dtype == "auto":
        half = gpu_bf16 if gpu else cpu_bf16  # bfloat16 where the hardware has it
        dtype = "bfloat16" if half else ("float16" if gpu else "float32")
    if cfg.engine == "transformers":
        return Choice("transformers", dtype, "")
    if not vllm_installed:
        return Choice("transformers", dtype, "vllm is not installed (pip install vllm on a GPU host)")
    if not gpu:
        return Choice("transformers", dtype, "no GPU is visible (vLLM needs one)")
    return Choice("vllm", dtype, "")


def _choose_here(cfg: GenerationConfig) -> Choice:
    import torch

    gpu = torch.cuda.is_available()
    vllm = importlib.util.find_spec("vllm") is not None
    return choose(cfg, vllm, gpu, gpu and torch.cuda.is_bf16_supported(), not gpu and cpu_native_bf16())


def machine_precision(cfg: GenerationConfig) -> str:
    """The precision ``cfg`` generates in on this machine (``auto`` resolved), with no log line: what the
    prediction cache keys its answers by and a cell's MLflow params record."""
    return _choose_here(cfg).dtype


def machine_choice(cfg: GenerationConfig) -> Choice:
    """:func:`choose` for this machine, with a log line when vLLM was asked for but cannot run."""
    choice = _choose_here(cfg)
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


def generate(
    model, tokenizer, prompts: list[str], cfg: GenerationConfig, on_batch: Callable[[int], None] | None = None
) -> list[Generation]:
    """Greedy answers for rendered prompts with the engine and precision ``cfg`` selects, for an in-memory
    model (serving, the drill). The grid opens its variants with :func:`open_variant` instead."""
    choice = machine_choice(cfg)
    if choice.engine == "vllm":
        return _vllm_copy_for(model, tokenizer, choice.dtype).generate(tokenizer, prompts, cfg, None, on_batch)
    return generate_transformers(place(model, choice.dtype), tokenizer, prompts, cfg, on_batch)


# --- vLLM, the way it serves adapters: one engine over the base model, each adapter a LoRARequest ---

VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


@dataclass(frozen=True)
class LoraSpec:
    """An adapter as vLLM names it in a ``LoRARequest``: a name, an id unique in the engine, a folder."""

    name: str
    id: int  # >= 1
    path: str


@dataclass(frozen=True)
class VllmRequest:
    """One prompt as vLLM is asked to answer it (built without vLLM; see :func:`vllm_requests`)."""

    prompt_token_ids: list[int]
    max_tokens: int
    temperature: float  # 0.0: greedy, as the transformers engine decodes
    lora: LoraSpec | None


def vllm_requests(tokenizer, prompts: list[str], cfg: GenerationConfig, lora: LoraSpec | None) -> list[VllmRequest]:
    """The requests for rendered prompts: the token ids the transformers engine feeds (no special tokens
    added: the chat template has them), greedy, capped at ``max_new_tokens``, with the adapter's LoRA."""
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    return [VllmRequest(list(i), cfg.max_new_tokens, 0.0, lora) for i in ids]


def vllm_generations(
    tokenizer, requests: list[VllmRequest], token_ids: list[list[int]], texts: list[str], per_item: float
):
    """:class:`Generation` rows from vLLM's completions, counted as the transformers engine counts them:
    completion tokens other than padding, ``hit_cap`` when they reach the cap."""
    rows = []
    for request, completion, text in zip(requests, token_ids, texts, strict=True):
        n = sum(t != tokenizer.pad_token_id for t in completion)
        rows.append(
            Generation(
                answer=clean_answer(text),
                prompt_tokens=len(request.prompt_token_ids),
                completion_tokens=n,
                latency_s=per_item,
                hit_cap=n >= request.max_tokens,
            )
        )
    return rows


def lora_rank(adapter_dirs: list[Path]) -> int:
    """The ``max_lora_rank`` these adapters need: their largest ``r``, rounded up to a size vLLM takes."""
    ranks = [json.loads((d / "adapter_config.json").read_text())["r"] for d in adapter_dirs]
    needed = max(ranks, default=VLLM_LORA_RANKS[0])
    for size in VLLM_LORA_RANKS:
        if size >= needed:
            return size
    raise ValueError(f"LoRA rank {needed} is above the largest vLLM serves ({VLLM_LORA_RANKS[-1]})")


class VllmEngine:
    """One vLLM ``LLM``: over the base model with LoRA enabled (the grid), or over a saved copy of an
    in-memory model (serving, the drill: :func:`generate`). Lives as long as its process."""

    def __init__(self, folder: str, dtype: str, max_lora_rank: int | None) -> None:
        from vllm import LLM

        lora = {"enable_lora": True, "max_lora_rank": max_lora_rank, "max_loras": 1} if max_lora_rank else {}
        self.llm = LLM(model=folder, dtype=dtype, seed=0, **lora)
        self.lora_ids: dict[str, int] = {}  # adapter folder -> its LoRARequest id (stable in this engine)

    def lora(self, adapter_dir: Path) -> LoraSpec:
        """The adapter's ``LoRARequest`` spec; the same folder keeps its id (vLLM caches adapters by id)."""
        path = str(adapter_dir.resolve())
        ident = self.lora_ids.setdefault(path, len(self.lora_ids) + 1)
        return LoraSpec(f"adapter-{ident}", ident, path)

    def generate(
        self,
        tokenizer,
        prompts: list[str],
        cfg: GenerationConfig,
        lora: LoraSpec | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest

        requests = vllm_requests(tokenizer, prompts, cfg, lora)
        params = SamplingParams(temperature=0.0, max_tokens=cfg.max_new_tokens)
        lora_request = LoRARequest(lora.name, lora.id, lora.path) if lora else None
        with Progress(len(prompts), "generate (vllm)", "answers", enabled=bool(prompts) and on_batch is None) as bar:
            start = time.perf_counter()
            outputs = self.llm.generate(
                [TokensPrompt(prompt_token_ids=r.prompt_token_ids) for r in requests],
                params,
                use_tqdm=False,
                lora_request=lora_request,
            )
            per_item = (time.perf_counter() - start) / max(len(prompts), 1)
            bar.update(len(prompts))
        if on_batch is not None:
            on_batch(len(prompts))
        completions = [o.outputs[0] for o in outputs]
        return vllm_generations(
            tokenizer, requests, [c.token_ids for c in completions], [c.text for c in completions], per_item
        )


_engines: dict = {}  # this process's vLLM engines: (folder, dtype, max_lora_rank) -> VllmEngine; never closed


def _vllm_engine(folder: str, dtype: str, max_lora_rank: int | None) -> VllmEngine:
    """The process's engine for ``folder``, started on first use and kept: vLLM does not give its GPU memory
    back when an engine is deleted, so a second engine in one process risks running out of it."""
    key = (folder, dtype, max_lora_rank)
    if key not in _engines:
        logger.info(
            "starting vLLM (%s) on %s%s", dtype, folder, f", LoRA rank <= {max_lora_rank}" if max_lora_rank else ""
        )
        _engines[key] = VllmEngine(folder, dtype, max_lora_rank)
    return _engines[key]


_copies: dict = {}  # in-memory models saved for vLLM: id(model) -> (weakref, folder)


def _vllm_copy_for(model, tokenizer, dtype: str) -> VllmEngine:
    """An engine over a saved copy of an in-memory model (one per model; serving and the drill hold one or two)."""
    ref, folder = _copies.get(id(model), (None, None))
    if ref is None or ref() is not model:
        folder = tempfile.mkdtemp(prefix="ragtune-vllm-")
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        _copies[id(model)] = (weakref.ref(model), folder)
    return _vllm_engine(folder, dtype, None)


class Variant:
    """A model variant (the base model, or it with one adapter) ready to answer, in either engine.

    transformers: the base model with the adapter merged, on the GPU when there is one. vLLM: the
    process's one engine over the base model, the adapter a ``LoRARequest`` (ids by folder, stable
    in the process), so changing variant loads an adapter, not a model.
    """

    def __init__(self, base_dir: Path, adapter_dir: Path | None, tokenizer, cfg: GenerationConfig, max_lora_rank: int):
        self.tokenizer, self.choice = tokenizer, machine_choice(cfg)
        if self.choice.engine == "vllm":
            self.engine = _vllm_engine(str(base_dir), self.choice.dtype, max_lora_rank)
            self.lora = None if adapter_dir is None else self.engine.lora(adapter_dir)
            self.model = None
        else:
            from components.llm.models import load_model

            self.model = place(load_model(base_dir, adapter_dir), self.choice.dtype)

    def generate(
        self, prompts: list[str], cfg: GenerationConfig, on_batch: Callable[[int], None] | None = None
    ) -> list[Generation]:
        if self.model is None:
            return self.engine.generate(self.tokenizer, prompts, cfg, self.lora, on_batch)
        return generate_transformers(self.model, self.tokenizer, prompts, cfg, on_batch)
