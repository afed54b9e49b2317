"""Start ``mlflow server`` with the basic-auth database in Postgres (entry point of the MLflow image).

MLflow's auth app reads its database URI from the ini file only (``database_uri``), never from an
environment variable, and ``basic_auth.ini`` with a sqlite path loses every user at a restart.
This renders the ini template (``${VAR}`` placeholders, here ``${MLFLOW_AUTH_DATABASE_URI}``) from
the environment into a private file, points ``MLFLOW_AUTH_CONFIG_PATH`` at it and execs
``mlflow server`` with the arguments given. The admin user comes from ``MLFLOW_AUTH_ADMIN_USERNAME``
and ``MLFLOW_AUTH_ADMIN_PASSWORD`` (MLflow reads those itself).

    python serve.py --host 0.0.0.0 --port 5000 --app-name basic-auth ...
"""

from __future__ import annotations

import os
import string
import sys
import tempfile
from pathlib import Path

TEMPLATE_ENV = "MLFLOW_AUTH_CONFIG_TEMPLATE"
DEFAULT_TEMPLATE = "/etc/mlflow/basic_auth.ini"


def render(template: str, env: dict[str, str]) -> str:
    """The ini text with every ``${VAR}`` replaced; a variable missing from ``env`` is an error."""
    try:
        return string.Template(template).substitute(env)
    except KeyError as exc:
        raise SystemExit(f"serve.py: the auth config template needs the environment variable {exc.args[0]}") from exc


def main(argv: list[str]) -> None:
    template = Path(os.environ.get(TEMPLATE_ENV, DEFAULT_TEMPLATE)).read_text(encoding="utf-8")
    fd, path = tempfile.mkstemp(prefix="mlflow-auth-", suffix=".ini")  # mode 0600: it holds a password
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(render(template, dict(os.environ)))
    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = path
    os.execvp("mlflow", ["mlflow", "server", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
