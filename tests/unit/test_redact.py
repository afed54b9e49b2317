"""No line ragtune prints carries a URL's user and password: error lines, log records, the CI summary."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from components.redact import RedactingFilter, redact
from tests.conftest import free_port


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("http://alice:s3cret@mlflow:5000/api", "http://***@mlflow:5000/api"),
        (
            "postgresql://ragtune:pw@postgres:5432/mlflow and https://u:p@h/x",
            "postgresql://***@postgres:5432/mlflow and https://***@h/x",
        ),
        ("https://token@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
        ("http://127.0.0.1:5000/api?user=a", "http://127.0.0.1:5000/api?user=a"),  # no credentials: unchanged
        ("mail me at dev@ragtune.invalid", "mail me at dev@ragtune.invalid"),  # no URL: unchanged
    ],
)
def test_redact_removes_the_credentials_of_every_url(text, clean):
    assert redact(text) == clean


def test_log_records_and_their_tracebacks_are_redacted():
    logger = logging.getLogger("ragtune.test.redact")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("cannot reach %s", "http://ci:hunter2@mlflow:5000")
        try:
            raise ConnectionError("refused: http://ci:hunter2@mlflow:5000/api/2.0")
        except ConnectionError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert records and all("hunter2" not in r for r in records)
    assert "http://***@mlflow:5000" in records[0] and "ConnectionError" in records[1]


def test_a_command_that_fails_on_a_url_prints_it_without_its_password(monkeypatch):
    from flows.cli import app

    url = f"http://ci:hunter2@127.0.0.1:{free_port()}"  # nothing listens: the preflight fails naming the URL
    result = CliRunner().invoke(app, ["run"], env={"MLFLOW_TRACKING_URI": url})
    assert result.exit_code == 3, result.output
    assert "hunter2" not in result.output and f"http://***@127.0.0.1:{url.rsplit(':', 1)[1]}" in result.output
