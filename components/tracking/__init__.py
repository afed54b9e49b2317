"""MLflow, and only MLflow: runs and their provenance (:mod:`.runs`), the model registry (:mod:`.registry`).

``from components import tracking`` gives the functions of both; no other package imports mlflow,
except ``components.serving.model``, whose pyfunc class must subclass ``mlflow.pyfunc.PythonModel``.
"""

from components.tracking.registry import (
    alias_version,
    download,
    ensure_base_model,
    find_version,
    load_pyfunc,
    register_pyfunc,
    set_alias,
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
    provenance_tags,
    run_info,
    run_params,
    setup,
    start_parent,
)

__all__ = [
    "DEFAULT_ARTIFACTS",
    "DEFAULT_DB",
    "alias_version",
    "cell_runs",
    "connect",
    "default_tracking_uri",
    "download",
    "ensure_base_model",
    "find_version",
    "flat",
    "git_commit",
    "latest_parent",
    "load_pyfunc",
    "log_cell",
    "log_sweep_trial",
    "log_to_run",
    "log_training",
    "provenance_tags",
    "register_pyfunc",
    "run_info",
    "run_params",
    "set_alias",
    "setup",
    "start_parent",
]
