"""A stage reads only the params keys dvc.yaml declares for it; any other read is refused, naming both."""

from __future__ import annotations

import pytest

from components.config import UndeclaredParamError, restrict
from flows.common import declared_params
from tests.conftest import PARAMS, REPO


def test_declared_sections_read_through_and_others_are_refused_naming_stage_and_key():
    view = restrict(PARAMS, ["evaluation.generation", "retrieval.retrievers"], "evaluate")
    assert view.evaluation.generation == PARAMS.evaluation.generation
    assert view.retrieval.retrievers == PARAMS.retrieval.retrievers
    assert view.data.paths == PARAMS.data.paths and view.evaluation.experiment == "ragtune"  # always allowed
    with pytest.raises(UndeclaredParamError, match=r"stage 'evaluate' reads params/evaluation.yaml:registry"):
        view.evaluation.registry  # noqa: B018
    with pytest.raises(UndeclaredParamError, match=r"params/finetune.yaml:\(all of it\)"):
        view.finetune  # noqa: B018
    with pytest.raises(UndeclaredParamError, match="evaluation.yaml:model_dump"):
        view.evaluation.model_dump()  # dumping a partly declared section reads undeclared keys


def test_a_dotted_key_allows_that_value_only():
    view = restrict(PARAMS, ["evaluation.prompts.system"], "finetune")
    assert view.evaluation.prompts.system == PARAMS.evaluation.prompts.system
    with pytest.raises(UndeclaredParamError, match="evaluation.yaml:prompts.closed_book"):
        view.evaluation.prompts.closed_book  # noqa: B018


def test_helper_methods_read_their_fields_through_the_view():
    assert restrict(PARAMS, ["retrieval.retrievers"], "x").retrieval.retriever("fulltext-k3").mode == "fulltext"
    with pytest.raises(UndeclaredParamError, match="retrieval.yaml:retrievers"):
        restrict(PARAMS, ["retrieval.embedders"], "x").retrieval.retriever("fulltext-k3")


def test_a_view_cannot_be_changed():
    with pytest.raises(TypeError, match="read-only"):
        restrict(PARAMS, ["evaluation"], "x").evaluation = None


@pytest.mark.parametrize(
    "stage", ["questions", "ingest", "model", "index", "retrieval_eval", "finetune", "evaluate", "select", "register"]
)
def test_every_key_dvc_yaml_declares_exists(stage):
    for key in declared_params(REPO / "dvc.yaml", stage):
        value = PARAMS
        for part in key.split("."):
            value = getattr(value, part)  # an AttributeError names a declared key params do not have
