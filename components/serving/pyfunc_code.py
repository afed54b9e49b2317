"""The model code MLflow stores in every version and runs to load it (MLflow's "models from code").

Nothing imports this module: :func:`components.tracking.register_pyfunc` logs this file, and
``mlflow.pyfunc.load_model`` executes it (with the bundled ``components`` package on the path) to
get the model object. No pickle of the object is stored, so loading a version runs this code and
the bundled package, nothing else.
"""

import mlflow.models

from components.serving.model import RagtuneModel

mlflow.models.set_model(RagtuneModel())
