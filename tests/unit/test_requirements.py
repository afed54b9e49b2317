"""What a test run needs beyond Python (a browser, a mount namespace): a skip with its reason
locally, a failure where CI requires it; CI and the README name every such requirement."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO, require

ENV = "RAGTUNE_REQUIRE_SOMETHING"


def test_a_met_requirement_lets_the_test_run(monkeypatch):
    monkeypatch.setenv(ENV, "1")
    require(None, ENV)


OUTCOMES = (pytest.skip.Exception, pytest.fail.Exception)  # caught both, so a wrong one fails here


def test_a_missing_requirement_skips_with_its_reason(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(OUTCOMES) as outcome:
        require("no widget: apt-get install widget", ENV)
    assert outcome.type is pytest.skip.Exception and outcome.value.msg == "no widget: apt-get install widget"


def test_a_missing_requirement_fails_where_it_is_required(monkeypatch):
    monkeypatch.setenv(ENV, "1")
    with pytest.raises(OUTCOMES) as outcome:
        require("no widget", ENV)
    assert outcome.type is pytest.fail.Exception and outcome.value.msg.startswith(f"no widget ({ENV} is set")


def test_ci_sets_and_the_readme_names_every_requirement_the_tests_read():
    used = set()
    for path in (REPO / "tests").rglob("*.py"):
        if path.name != "test_requirements.py":
            used |= set(re.findall(r"RAGTUNE_REQUIRE_[A-Z_]+", path.read_text(encoding="utf-8")))
    assert {"RAGTUNE_REQUIRE_BROWSER", "RAGTUNE_REQUIRE_MOUNT_NS"} <= used
    ci = set(re.findall(r"export (RAGTUNE_REQUIRE_[A-Z_]+)=1", (REPO / ".ci" / "run").read_text(encoding="utf-8")))
    assert used <= ci
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert [v for v in sorted(used) if v not in readme] == []
