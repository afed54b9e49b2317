"""MLflow, and only MLflow: runs and their provenance (:mod:`.runs`), the model registry (:mod:`.registry`),
the leaderboard on the dashboard (:mod:`.dashboard`).

``from components import tracking`` gives the functions of those; no other package imports mlflow,
except ``components.serving.model``, whose pyfunc class must subclass ``mlflow.pyfunc.PythonModel``.
The GenAI evaluation of a cell (:mod:`.genai`, with its scorers in :mod:`.scorers`) wraps the
evaluation's metric modules, so it is imported on its own (``from components.tracking import genai``)
by the stage that logs cells, and the other stages do not depend on the evaluation code.
"""

from components.tracking.dashboard import mark_leaderboard, urls
from components.tracking.registry import (
    AliasMovedError,
    RegistryError,
    alias_version,
    download,
    ensure_base_model,
    find_version,
    is_tracking_error,
    load_pyfunc,
    move_alias,
    register_pyfunc,
)
from components.tracking.runs import (
    DEFAULT_ARTIFACTS,
    DEFAULT_DB,
    cell_runs,
    connect,
    default_tracking_uri,
    flat,
    git_commit,
    latest_parent,
    log_cell,
    log_sweep_trial,
    log_to_run,
    log_training,
    ops_experiment,
    provenance_tags,
    run_info,
    run_params,
    setup,
    setup_ops,
    start_parent,
)

__all__ = [
    "AliasMovedError",
    "DEFAULT_ARTIFACTS",
    "DEFAULT_DB",
    "alias_version",
    "cell_runs",
    "connect",
    "default_tracking_uri",
    "download",
    "ensure_base_model",
    "find_version",
    "is_tracking_error",
    "flat",
    "git_commit",
    "latest_parent",
    "load_pyfunc",
    "log_cell",
    "log_sweep_trial",
    "log_to_run",
    "log_training",
    "mark_leaderboard",
    "move_alias",
    "ops_experiment",
    "provenance_tags",
    "register_pyfunc",
    "RegistryError",
    "run_info",
    "run_params",
    "setup",
    "setup_ops",
    "start_parent",
    "urls",
]
