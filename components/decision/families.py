"""The families of grid cells a team weighs against each other: "RAG or fine-tuning, or both?"."""

from __future__ import annotations

NO_RETRIEVAL = "none"  # the retriever of a closed-book cell

# Every cell is in one family.
FAMILIES = ("base", "rag", "finetune", "finetune+rag", "few-shot")
FAMILY_NAMES = {
    "base": "no training, no retrieval",
    "rag": "retrieval only",
    "finetune": "fine-tuning only",
    "finetune+rag": "fine-tuning with retrieval",
    "few-shot": "few-shot prompting",
}


def family(model: str, retriever: str, shots: int) -> str:
    """The family of a cell (see :data:`FAMILIES`): few-shot prompts first, then what the cell trains and retrieves."""
    if shots:
        return "few-shot"
    tuned = model != "base"
    rag = retriever != NO_RETRIEVAL
    return {(False, False): "base", (False, True): "rag", (True, False): "finetune", (True, True): "finetune+rag"}[
        (tuned, rag)
    ]
