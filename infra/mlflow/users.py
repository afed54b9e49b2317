"""Create ragtune's MLflow users and their permissions on a basic-auth server (idempotent; run it as the admin).

One account per kind of client, each with only what it needs (docs/operations.md, "MLflow users"):

| user | who | permissions |
| --- | --- | --- |
| ``ragtune-admin`` | operators (the server's admin: MLFLOW_AUTH_ADMIN_USERNAME) | everything |
| ``ragtune-worker`` | the Prefect worker and the Ray nodes | EDIT on every experiment and registered model |
| ``ragtune-ci`` | CI on the main branch (a protected environment) | EDIT on every experiment and registered model |
| ``ragtune-ci-readonly`` | CI on pull requests | READ everywhere (the server's default); EDIT only on the |
| | | ``<experiment>-pr`` experiments, where judge-only runs log |

The server's ``default_permission = READ`` (basic_auth.ini) is what every user has on the rest: the
read-only user can load the champion and judge a branch's cell, never register a model or move an alias.

    MLFLOW_TRACKING_URI=http://mlflow:5000 MLFLOW_TRACKING_USERNAME=ragtune-admin MLFLOW_TRACKING_PASSWORD=... \\
    RAGTUNE_WORKER_PASSWORD=... RAGTUNE_CI_PASSWORD=... RAGTUNE_CI_READONLY_PASSWORD=... \\
        python users.py --experiment ragtune
"""

from __future__ import annotations

import argparse
import os
import sys

WRITERS = {"ragtune-worker": "RAGTUNE_WORKER_PASSWORD", "ragtune-ci": "RAGTUNE_CI_PASSWORD"}
READONLY = ("ragtune-ci-readonly", "RAGTUNE_CI_READONLY_PASSWORD")
PR_SUFFIX = "-pr"  # judge-only runs of pull requests log into <experiment>-pr (and its -ops twin)


def pr_experiments(experiment: str) -> list[str]:
    """The experiments the read-only user may write: its runs and their bookkeeping (``-ops``) runs."""
    return [f"{experiment}{PR_SUFFIX}", f"{experiment}{PR_SUFFIX}-ops"]


def _user(auth, username: str, password: str) -> str:
    """Create ``username`` or set its password; what was done."""
    from mlflow.exceptions import MlflowException

    try:
        auth.get_user(username)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        auth.create_user(username, password)
        return f"created {username}"
    auth.update_user_password(username, password)
    return f"updated the password of {username}"


def apply(tracking_uri: str, experiment: str, env: dict[str, str]) -> list[str]:
    """Create the users and grants on the server at ``tracking_uri`` (admin credentials in ``env``); one line each."""
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    missing = [v for v in (*WRITERS.values(), READONLY[1]) if not env.get(v)]
    if missing:
        raise SystemExit(f"users.py: set {', '.join(missing)} (each user's password)")
    auth = get_app_client("basic-auth", tracking_uri=tracking_uri)
    done = [_user(auth, name, env[variable]) for name, variable in (*WRITERS.items(), READONLY)]
    for name in WRITERS:
        for resource in ("experiment", "registered_model"):
            auth.grant_user_permission(name, resource, "*", "EDIT")
        done.append(f"{name}: EDIT on every experiment and registered model")
    client = MlflowClient(tracking_uri=tracking_uri)
    for name in pr_experiments(experiment):
        found = client.get_experiment_by_name(name)
        experiment_id = found.experiment_id if found else client.create_experiment(name)
        auth.grant_user_permission(READONLY[0], "experiment", experiment_id, "EDIT")
        done.append(f"{READONLY[0]}: EDIT on experiment {name} ({experiment_id}) only")
    return done


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="ragtune", help="params/evaluation.yaml:experiment")
    args = parser.parse_args(argv)
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise SystemExit("users.py: set MLFLOW_TRACKING_URI (and the admin's MLFLOW_TRACKING_USERNAME/_PASSWORD)")
    for line in apply(uri, args.experiment, dict(os.environ)):
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
