"""Which generation engine and precision run, and the fallback from vLLM to transformers."""

from __future__ import annotations

import logging

import pytest

from components.llm import engines
from components.llm.engines import Choice, choose
from tests.conftest import PARAMS, like


def _cfg(engine: str, dtype: str = "auto"):
    return like(PARAMS.evaluation.generation, engine=engine, dtype=dtype)


@pytest.mark.parametrize(
    ("engine", "vllm", "gpu", "expected"),
    [
        ("transformers", True, True, "transformers"),
        ("vllm", True, True, "vllm"),
        ("vllm", False, True, "transformers"),
        ("vllm", True, False, "transformers"),
        ("vllm", False, False, "transformers"),
    ],
)
def test_vllm_runs_only_when_installed_and_a_gpu_is_present(engine, vllm, gpu, expected):
    choice = choose(_cfg(engine), vllm_installed=vllm, gpu=gpu, gpu_bf16=True)
    assert choice.engine == expected
    assert bool(choice.reason) == (engine != expected)  # a fallback always says why


def test_auto_precision_is_half_on_a_gpu_and_float32_on_cpu():
    assert choose(_cfg("transformers"), False, gpu=False, gpu_bf16=False).dtype == "float32"
    assert choose(_cfg("transformers"), False, gpu=True, gpu_bf16=True).dtype == "bfloat16"
    assert choose(_cfg("transformers"), False, gpu=True, gpu_bf16=False).dtype == "float16"
    assert choose(_cfg("vllm", "float32"), True, gpu=True, gpu_bf16=True) == Choice("vllm", "float32", "")


def test_auto_precision_is_bfloat16_on_a_cpu_with_bf16_in_hardware_only():
    assert choose(_cfg("transformers"), False, gpu=False, gpu_bf16=False, cpu_bf16=True).dtype == "bfloat16"
    assert choose(_cfg("transformers"), False, gpu=False, gpu_bf16=False, cpu_bf16=False).dtype == "float32"
    assert choose(_cfg("transformers"), False, gpu=True, gpu_bf16=False, cpu_bf16=True).dtype == "float16"  # the GPU's
    assert choose(_cfg("transformers", "float32"), False, gpu=False, gpu_bf16=False, cpu_bf16=True).dtype == "float32"


X86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512bw {extra}\n\n"


@pytest.mark.parametrize(
    ("cpuinfo", "native"),
    [
        (X86.format(extra="avx512_bf16 avx512_vnni"), True),  # AMD Zen 4, Intel Cooper Lake
        (X86.format(extra="amx_bf16 amx_tile"), True),  # Intel Sapphire Rapids
        (X86.format(extra="avx512_vnni"), False),  # AVX-512 without bf16: emulated, slower than float32
        ("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n", True),  # Arm Neoverse V1 (Graviton 3)
        ("processor\t: 0\nFeatures\t: fp asimd\n", False),
        ("", False),
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(cpuinfo, native):
    assert engines.cpu_native_bf16(cpuinfo) is native


def test_the_shipped_params_run_anywhere():
    cfg = PARAMS.evaluation.generation
    assert (cfg.engine, cfg.dtype) == ("transformers", "auto")


def test_a_fallback_is_logged_with_its_reason(caplog):
    """On this machine (no vLLM installed, no GPU) asking for vLLM falls back, and says so."""
    pytest.importorskip("torch")
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is not None and torch.cuda.is_available():
        pytest.skip("vLLM and a GPU are present: nothing falls back here")
    caplog.set_level(logging.WARNING, logger="components.llm.engines")
    choice = engines.machine_choice(_cfg("vllm"))
    assert choice.engine == "transformers"
    messages = [r.getMessage() for r in caplog.records]
    assert any("generation.engine=vllm" in m and "falling back to transformers" in m for m in messages), messages
    caplog.clear()
    engines.machine_choice(_cfg("transformers"))
    assert caplog.records == []
