"""LoRA fine-tuning with Ray Train: data-parallel workers, transformers + peft.

Training data, per adapter config, is a list of sources (``data:`` in params/finetune.yaml), each
built by its own strategy function in :data:`SOURCES`:

- ``corpus``: every document cut into ``max_length``-token windows, full language-model loss
  (continued pre-training), plus, with ``augment``, each *train-split* QA pair rendered as text
  (``qa_text``: "Question: ... Answer: ..."; ``statement``: a declarative sentence), since facts
  stick in weights only when seen in several forms (Ovadia et al. 2023);
- ``qa``: each train question in the evaluation's closed-book chat prompt, loss on the answer only;
- ``raft``: each train question in the evaluation's *with-context* chat prompt with as many passages
  as the named retriever's ``top_k``: the gold chunk (the chunk of the question's first gold
  document that contains the answer, else its first chunk) with probability ``p_gold``, the other
  passages chunks sampled from other documents (deterministic by seed), in shuffled order; loss
  on the answer only (RAFT, Zhang et al. 2024). A model learns to read the context and to ignore
  distractors.

Test and dev questions are never trained on: :func:`build_examples` keeps the train split itself.

The Ray Train ``TorchTrainer`` runs :func:`train_loop_per_worker` on each worker (DDP over gloo on
CPU, nccl on GPU with bf16 autocast). Every ``checkpoint_every`` steps rank 0 reports a checkpoint
holding the adapter, the optimiser and scheduler state and the step; a restarted worker group
(``max_failures``) resumes from it through ``ray.train.get_checkpoint()``. The run is named after
the adapter and a fingerprint of its config and data, so re-running an interrupted
``ragtune finetune`` with the same storage resumes from the latest checkpoint. ``RAY_ADDRESS``
(read by Ray itself) selects an existing cluster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from components.config import AdapterConfig, CorpusSource, PromptConfig, QASource, RaftSource, RayConfig
from components.generation import chat_prompt, user_message
from components.train_step import IGNORE_INDEX, micro_batches, plan_order

logger = logging.getLogger(__name__)

__all__ = ["IGNORE_INDEX", "SOURCES", "TrainingInputs", "build_examples", "plan_steps", "train_adapter"]

STATE_FILE = "trainer_state.pt"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class TrainingInputs:
    """What the data sources draw on: documents, QA pairs of every split, and per-retriever chunks."""

    documents: pd.DataFrame
    qa: pd.DataFrame
    chunks: dict[str, pd.DataFrame] = field(default_factory=dict)  # retriever name -> its chunker's chunks
    top_k: dict[str, int] = field(default_factory=dict)  # retriever name -> passages per prompt

    def train_qa(self) -> pd.DataFrame:
        """Train-split questions only: dev and test questions never reach training."""
        if self.qa.empty:
            return self.qa
        return self.qa[self.qa["split"] == "train"]


# --- examples --------------------------------------------------------------------------------


def corpus_examples(texts: list[str], tokenizer, max_length: int) -> list[dict]:
    """Windows of ``max_length`` tokens over each text, ending with EOS; loss on every token."""
    examples = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        for start in range(0, len(ids), max_length):
            window = ids[start : start + max_length]
            if len(window) > 1:
                examples.append({"input_ids": window, "labels": list(window)})
    return examples


FACT_FORMS: dict[str, Callable[[str, str], str]] = {
    "qa_text": lambda q, a: f"Question: {q}\nAnswer: {a}",
    "statement": lambda q, a: f'The answer to the question "{q}" is {a}.',
}


def fact_texts(qa_train: pd.DataFrame, forms: list[str]) -> list[str]:
    """Each train QA pair rendered as text in every requested form (for continued pre-training)."""
    if not forms or qa_train.empty:
        return []
    return [
        FACT_FORMS[form](q, answers[0])
        for q, answers in zip(qa_train["question"], qa_train["answers"], strict=True)
        for form in forms
    ]


def chat_example(
    tokenizer, prompts: PromptConfig, question: str, contexts: list[str] | None, answer: str, max_length: int
) -> dict | None:
    """One chat exchange with loss on the answer tokens only; None if the prompt leaves no room."""
    user = user_message(prompts, question, contexts)
    prompt_ids = tokenizer(chat_prompt(tokenizer, prompts.system, user), add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(chat_prompt(tokenizer, prompts.system, user, answer=answer), add_special_tokens=False)[
        "input_ids"
    ]
    if full_ids[: len(prompt_ids)] != prompt_ids or len(full_ids) <= len(prompt_ids):
        raise ValueError(f"chat template does not extend the prompt for question {question!r}")
    if len(prompt_ids) >= max_length:
        return None
    full_ids = full_ids[:max_length]
    return {"input_ids": full_ids, "labels": [IGNORE_INDEX] * len(prompt_ids) + full_ids[len(prompt_ids) :]}


def qa_examples(qa: pd.DataFrame, tokenizer, prompts: PromptConfig, max_length: int) -> list[dict]:
    """Closed-book chat examples, one per (question, first answer); loss on the answer only."""
    examples = [
        chat_example(tokenizer, prompts, q, None, answers[0], max_length)
        for q, answers in zip(qa["question"], qa["answers"], strict=True)
    ]
    return [e for e in examples if e is not None]


def gold_chunk(chunks: pd.DataFrame, doc_id: str, answers: list[str]) -> str | None:
    """The first chunk of ``doc_id`` that contains an answer, else its first chunk (None if none)."""
    own = chunks[chunks["doc_id"] == doc_id]
    for text in own["text"]:
        if any(a and a in text for a in answers):
            return text
    return own["text"].iloc[0] if len(own) else None


def raft_contexts(
    qa: pd.DataFrame, chunks: pd.DataFrame, top_k: int, p_gold: float, seed: int
) -> list[tuple[str, list[str], bool]]:
    """Per question: (question, passages, gold kept), deterministic by ``seed``.

    With probability ``p_gold`` the passages are the gold chunk and ``top_k - 1`` distractors,
    otherwise ``top_k`` distractors; distractors are chunks of documents the question is not about.
    """
    rng = random.Random(seed)
    out = []
    doc_ids = chunks["doc_id"].to_numpy()
    texts = chunks["text"].tolist()
    for question, answers, gold_docs in zip(qa["question"], qa["answers"], qa["doc_ids"], strict=True):
        answers = list(answers)
        gold = gold_chunk(chunks, gold_docs[0], answers) if len(gold_docs) else None
        others = [i for i, d in enumerate(doc_ids) if d not in set(gold_docs)]
        keep = gold is not None and rng.random() < p_gold
        n_distractors = top_k - 1 if keep else top_k
        if len(others) < n_distractors:
            raise ValueError(f"raft: only {len(others)} chunks outside the gold documents, need {n_distractors}")
        passages = [texts[i] for i in rng.sample(others, n_distractors)] + ([gold] if keep else [])
        rng.shuffle(passages)
        out.append((question, passages, keep))
    return out


def raft_examples(
    qa: pd.DataFrame,
    chunks: pd.DataFrame,
    tokenizer,
    prompts: PromptConfig,
    max_length: int,
    top_k: int,
    p_gold: float,
    seed: int,
) -> list[dict]:
    """RAFT chat examples in the evaluation's with-context prompt; loss on the answer only.

    Examples whose prompt does not fit ``max_length`` are dropped (and counted in the log).
    """
    examples = []
    contexts = raft_contexts(qa, chunks, top_k, p_gold, seed)
    for (question, passages, _), answers in zip(contexts, qa["answers"], strict=True):
        example = chat_example(tokenizer, prompts, question, passages, answers[0], max_length)
        if example is not None:
            examples.append(example)
    if len(examples) < len(qa):
        logger.warning(
            "raft: %d of %d prompts exceed max_length %d and were dropped", len(qa) - len(examples), len(qa), max_length
        )
    return examples


def _corpus(inputs: TrainingInputs, source: CorpusSource, tokenizer, cfg: AdapterConfig, prompts: PromptConfig):
    texts = inputs.documents["text"].tolist() + fact_texts(inputs.train_qa(), list(source.augment))
    return corpus_examples(texts, tokenizer, cfg.max_length)


def _qa(inputs: TrainingInputs, source: QASource, tokenizer, cfg: AdapterConfig, prompts: PromptConfig):
    return qa_examples(inputs.train_qa(), tokenizer, prompts, cfg.max_length)


def _raft(inputs: TrainingInputs, source: RaftSource, tokenizer, cfg: AdapterConfig, prompts: PromptConfig):
    if source.retriever not in inputs.chunks:
        raise ValueError(f"adapter {cfg.name!r}: no chunks given for raft retriever {source.retriever!r}")
    return raft_examples(
        inputs.train_qa(),
        inputs.chunks[source.retriever],
        tokenizer,
        prompts,
        cfg.max_length,
        inputs.top_k[source.retriever],
        source.p_gold,
        cfg.seed,
    )


SOURCES = {"corpus": _corpus, "qa": _qa, "raft": _raft}


def weighted(examples: list[dict], weight: float, seed: int) -> list[dict]:
    """``round(weight * n)`` examples: whole copies, then a seeded sample for the fraction."""
    target = round(weight * len(examples))
    whole, rest = divmod(target, len(examples)) if examples else (0, 0)
    return examples * whole + random.Random(seed).sample(examples, rest)


def build_examples(inputs: TrainingInputs, tokenizer, cfg: AdapterConfig, prompts: PromptConfig) -> list[dict]:
    """All training examples an adapter config asks for, each source through its strategy function."""
    examples = []
    for source in cfg.data:
        built = SOURCES[source.source](inputs, source, tokenizer, cfg, prompts)
        logger.info("adapter %s: %d %s examples (weight %g)", cfg.name, len(built), source.source, source.weight)
        examples += weighted(built, source.weight, cfg.seed)
    return examples


def held_out_examples(
    inputs: TrainingInputs, tokenizer, cfg: AdapterConfig, prompts: PromptConfig, n_questions: int, split: str = "dev"
) -> list[dict]:
    """Answer-only examples of the first ``n_questions`` of ``split``, in the adapter's own format.

    The adapter's ``qa`` and ``raft`` sources are built over those questions (a corpus source has
    no held-out text: every document is trained on); an adapter with neither gets closed-book QA.
    The loss on them is what a sweep compares: how well the adapter answers unseen questions.
    """
    questions = inputs.qa[inputs.qa["split"] == split].head(n_questions)
    if questions.empty:
        raise ValueError(f"no {split!r} questions to measure a held-out loss on")
    view = TrainingInputs(inputs.documents, questions.assign(split="train"), inputs.chunks, inputs.top_k)
    sources = [s for s in cfg.data if s.source in ("qa", "raft")] or [QASource(source="qa")]
    return [e for source in sources for e in SOURCES[source.source](view, source, tokenizer, cfg, prompts)]


def plan_steps(n_examples: int, cfg: AdapterConfig, world_size: int) -> int:
    """Optimiser steps: full epochs over the data, capped by ``max_steps``.

    One step consumes ``batch_size * grad_accum`` examples on each of ``world_size`` workers.
    """
    per_epoch = math.ceil(n_examples / (cfg.batch_size * cfg.grad_accum * world_size))
    total = per_epoch * cfg.epochs
    return min(total, cfg.max_steps) if cfg.max_steps else total


def fingerprint(examples: list[dict], cfg: AdapterConfig, ray_cfg: RayConfig, base_dir: Path) -> str:
    """Hash of everything that decides the trained weights: same hash, same run (so it can resume)."""
    h = hashlib.sha256()
    h.update(json.dumps([cfg.model_dump(mode="json"), ray_cfg.num_workers, str(base_dir.resolve())]).encode())
    for e in examples:
        h.update(json.dumps([e["input_ids"], e["labels"]]).encode())
    return h.hexdigest()[:12]


# --- the Ray Train worker --------------------------------------------------------------------


def train_loop_per_worker(config: dict) -> None:
    """One Ray Train worker: LoRA on the base model, DDP across workers, checkpoints from rank 0."""
    import ray.train
    import ray.train.torch
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    import components
    from components.train_step import add_lora, held_out_loss, make_optimizer, peak_memory_mb, train_step

    cfg = AdapterConfig(**config["adapter"])
    torch.set_num_threads(config["threads"])
    torch.manual_seed(cfg.seed)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    bf16 = device.type == "cuda"
    _record_pid(Path(config["run_dir"]) / "workers", rank)

    model = add_lora(
        AutoModelForCausalLM.from_pretrained(config["base_dir"]), cfg.r, cfg.alpha, cfg.dropout, cfg.target_modules
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    steps = config["steps"]
    state = {"step": 0, "tokens": 0, "train_time_s": 0.0, "history": [], "resumed_at": []}
    checkpoint = ray.train.get_checkpoint()
    saved = None
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            set_peft_model_state_dict(model, load_file(str(Path(d) / "adapter_model.safetensors")))
            saved = torch.load(Path(d) / STATE_FILE, weights_only=False)
        state = saved["state"]
        state["resumed_at"] = [*state["resumed_at"], state["step"]]
    ddp_model = ray.train.torch.prepare_model(model)
    optimizer, scheduler = make_optimizer(ddp_model, cfg.learning_rate, steps)
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])

    order = plan_order(config["examples"], cfg.batching, rank, world, cfg.batch_size * cfg.grad_accum, steps, cfg.seed)
    report_every = max(1, config["report_every"])
    eval_examples, eval_every = config.get("eval_examples") or [], config.get("eval_every")
    ddp_model.train()

    def evaluate() -> float:
        """Held-out loss per supervised token: each rank scores its share, the sums are all-reduced."""
        total, count = held_out_loss(model, eval_examples[rank::world], device, cfg.batch_size, bf16=bf16)
        if world > 1:
            import torch.distributed as dist

            sums = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
            dist.all_reduce(sums)
            total, count = float(sums[0]), int(sums[1])
        return total / max(count, 1)

    def report(final: bool) -> None:
        metrics = {
            "step": state["step"],
            "loss": state["history"][-1]["loss"] if state["history"] else float("nan"),
            "tokens_per_s": state["tokens"] / max(state["train_time_s"], 1e-9),
            "train_time_s": state["train_time_s"],
            "trainable_params": trainable,
            "peak_memory_mb": peak_memory_mb(device),
            "restarts": len(state["resumed_at"]),
        }
        if "dev_loss" in state:
            metrics["dev_loss"] = state["dev_loss"]
        due = final or (cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0)
        if final:
            metrics.update(
                history=state["history"], resumed_at=state["resumed_at"], components_file=components.__file__
            )
        if due and rank == 0:
            with tempfile.TemporaryDirectory() as tmp:
                model.save_pretrained(tmp)
                torch.save(
                    {"state": state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                    Path(tmp) / STATE_FILE,
                )
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        else:
            ray.train.report(metrics)

    for step in range(state["step"] + 1, steps + 1):
        start = time.perf_counter()
        micro = list(micro_batches(config["examples"], order[step - 1], cfg.grad_accum))
        loss, tokens = train_step(ddp_model, optimizer, scheduler, micro, device, bf16=bf16)
        state["train_time_s"] += time.perf_counter() - start
        state["tokens"] += tokens * world  # every rank processes a batch of similar size
        state["step"] = step
        state["history"].append(
            {"step": step, "loss": loss, "tokens_per_s": state["tokens"] / max(state["train_time_s"], 1e-9)}
        )
        eval_due = bool(eval_examples and eval_every) and (step % eval_every == 0 or step == steps)
        if eval_due:
            state["dev_loss"] = evaluate()
            state["history"][-1]["dev_loss"] = state["dev_loss"]
        checkpoint_due = bool(cfg.checkpoint_every) and step % cfg.checkpoint_every == 0
        if step == steps or step % report_every == 0 or checkpoint_due or eval_due or step == config["stop_after"]:
            report(final=step == steps or step == config["stop_after"])
        if step == config["stop_after"]:
            return  # a time slice: the run resumes from this checkpoint when started again
    if saved is not None and saved["state"]["step"] >= steps:
        report(final=True)  # a finished run started again: hand back its final checkpoint


def _record_pid(folder: Path, rank: int) -> None:
    """Write this worker's pid to ``folder/rank-<rank>.pid`` (an operator finds the worker to inspect)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".rank-{rank}.pid.{os.getpid()}"
    tmp.write_text(str(os.getpid()), encoding="utf-8")
    os.replace(tmp, folder / f"rank-{rank}.pid")


# --- the driver ------------------------------------------------------------------------------


def ensure_ray(
    ray_cfg: RayConfig, cluster_address: str | None, concurrent_runs: int = 1, state_api: bool = False
) -> None:
    """Join ``cluster_address`` (RAY_ADDRESS) or start a local Ray whose workers import this checkout.

    A local Ray gets at least enough logical CPUs for ``concurrent_runs`` training runs at once,
    each its workers plus one spare. ``state_api`` starts its dashboard process, which serves Ray's
    state API: Ray Train's placement-group cleaner needs it to free the CPUs of a run whose driver
    was killed (a sweep trial stopped early); a plain ``fit`` frees them itself.
    """
    import ray

    if ray.is_initialized():
        return
    if cluster_address:
        ray.init()  # Ray reads RAY_ADDRESS itself
    else:
        needed = concurrent_runs * (ray_cfg.num_workers * ray_cfg.cpus_per_worker + 1)
        # Workers get this repository on PYTHONPATH, so they import the same `components` as the
        # driver (a git worktree would otherwise load whichever copy is installed).
        ray.init(
            num_cpus=max(needed, os.cpu_count() or 1),
            include_dashboard=state_api,
            dashboard_host="127.0.0.1",
            runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}},
        )


def make_trainer(
    examples: list[dict],
    base_dir: Path,
    cfg: AdapterConfig,
    ray_cfg: RayConfig,
    storage_dir: Path,
    run_name: str,
    steps: int,
    stop_after: int | None = None,
    eval_examples: list[dict] | None = None,
    eval_every: int | None = None,
    callbacks: list | None = None,
    report_every: int | None = None,
):
    """The Ray Train ``TorchTrainer`` for one adapter run of ``steps`` steps, stored under ``run_name``.

    Workers report metrics every ``report_every`` steps (default: about 20 reports per run), at
    checkpoints, at held-out evaluations and at the end.
    """
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "adapter": cfg.model_dump(mode="json"),
            "base_dir": str(base_dir.resolve()),
            "examples": examples,
            "steps": steps,
            "threads": ray_cfg.cpus_per_worker,
            "report_every": report_every or max(1, steps // 20),
            "stop_after": stop_after,
            "run_dir": str(storage_dir.resolve() / run_name),
            "eval_examples": eval_examples or [],
            "eval_every": eval_every,
        },
        torch_config=TorchConfig(backend="nccl" if ray_cfg.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=ray_cfg.num_workers,
            use_gpu=ray_cfg.use_gpu,
            resources_per_worker={"CPU": ray_cfg.cpus_per_worker},
        ),
        run_config=RunConfig(
            storage_path=str(storage_dir.resolve()),
            name=run_name,
            failure_config=FailureConfig(max_failures=ray_cfg.max_failures),
            callbacks=callbacks,
        ),
    )


def train_adapter(
    examples: list[dict],
    base_dir: Path,
    cfg: AdapterConfig,
    ray_cfg: RayConfig,
    out_dir: Path,
    storage_dir: Path,
    cluster_address: str | None = None,
    stop_after: int | None = None,
    eval_examples: list[dict] | None = None,
    eval_every: int | None = None,
) -> dict:
    """Train one LoRA adapter with Ray Train and copy it to ``out_dir``.

    The run lives in ``storage_dir/<adapter>-<fingerprint>``: starting the same adapter on the same
    data again resumes from its latest checkpoint (or returns at once if it had finished).
    ``stop_after`` ends this call after that many steps (counted from the start of the run) with a
    checkpoint, so a long run can be trained in slices; the learning-rate schedule still spans
    the planned total. With ``eval_examples`` the loss on them is measured every ``eval_every``
    steps and at the end (``dev_loss``).

    Returns:
        Training metrics: step, final loss, tokens/s, wall time, peak memory, per-step history.
    """
    if not examples:
        raise ValueError(f"adapter {cfg.name!r}: no training examples")
    ensure_ray(ray_cfg, cluster_address)
    steps = plan_steps(len(examples), cfg, ray_cfg.num_workers)
    run_name = f"{cfg.name}-{fingerprint(examples, cfg, ray_cfg, base_dir)}"
    logger.info(
        "training %s: %d examples, %d steps on %d worker(s), run %s",
        cfg.name,
        len(examples),
        steps,
        ray_cfg.num_workers,
        run_name,
    )
    trainer = make_trainer(
        examples, base_dir, cfg, ray_cfg, storage_dir, run_name, steps, stop_after, eval_examples, eval_every
    )
    start = time.perf_counter()
    result = trainer.fit()
    wall = time.perf_counter() - start
    if result.checkpoint is None:
        raise RuntimeError(f"adapter {cfg.name!r}: training finished without a checkpoint")
    with result.checkpoint.as_directory() as ckpt:
        shutil.copytree(ckpt, out_dir, dirs_exist_ok=True)
    (out_dir / STATE_FILE).unlink(missing_ok=True)  # optimiser state stays in the run's storage
    metrics = dict(result.metrics)
    metrics.update(
        {
            "wall_time_s": wall,
            "examples": len(examples),
            "workers": ray_cfg.num_workers,
            "planned_steps": steps,
            "run_name": run_name,
        }
    )
    logger.info(
        "trained %s in %.0f s: loss %.3f, %.0f tokens/s", cfg.name, wall, metrics["loss"], metrics["tokens_per_s"]
    )
    return metrics
