"""Knowledge augmentation: the same facts in several phrasings, by deterministic rules."""

from __future__ import annotations

import pandas as pd
import pytest

from components.training.augment import augmented_texts, entity_pairs, rewrite, sentences

DOCS = pd.DataFrame(
    {"text": ["# Bolivia\n\nBolivia has the alpha-3 code BOL and the numeric code 068. It is in South America."]}
)
QA = pd.DataFrame(
    {
        "question": ["What is the alpha-3 code of Bolivia?", "Wer malte die Mona Lisa?"],
        "answers": [["BOL"], ["Leonardo"]],
    }
)


def test_questions_of_a_known_shape_become_statements_others_a_generic_one():
    assert rewrite("What is the alpha-3 code of Bolivia?", "BOL") == "The alpha-3 code of Bolivia is BOL."
    assert rewrite("Which currency has the code EUR?", "the Euro") == "the Euro is the currency that has the code EUR."
    assert (
        rewrite("Wer malte die Mona Lisa?", "Leonardo")
        == 'The answer to the question "Wer malte die Mona Lisa?" is Leonardo.'
    )


def test_sentences_and_entity_pairs_come_from_every_document():
    assert sentences(DOCS["text"][0]) == [
        "Bolivia has the alpha-3 code BOL and the numeric code 068.",
        "It is in South America.",
    ]
    pairs = entity_pairs("Bolivia has the alpha-3 code BOL and the numeric code 068.")
    assert "Bolivia and BOL: Bolivia has the alpha-3 code BOL and the numeric code 068." in pairs
    assert "BOL and 068: Bolivia has the alpha-3 code BOL and the numeric code 068." in pairs
    assert entity_pairs("it is small and quiet.") == []


@pytest.mark.parametrize("form", ["qa_text", "statement", "rewrite", "sentences", "entity_pairs"])
def test_every_form_is_deterministic(form):
    texts = augmented_texts(DOCS, QA, form)
    assert texts and texts == augmented_texts(DOCS, QA, form)


def test_an_unknown_form_is_named():
    with pytest.raises(ValueError, match="unknown augmentation 'paraphrase'"):
        augmented_texts(DOCS, QA, "paraphrase")
