"""A read-only view of :class:`Params` that lets a stage read only the keys it declares.

DVC re-runs a stage when a params key listed under its ``params:`` in ``dvc.yaml`` changes, and only
then: a stage that reads an undeclared key keeps results its current params would not produce. A
stage therefore gets its params through :func:`restrict`, with the keys dvc.yaml declares for it,
and reading any other key raises :class:`UndeclaredParamError` naming the stage and the key.

Keys are dotted from the file name: ``evaluation.generation`` (the whole section) or
``evaluation.prompts.system`` (one value). Reading a declared key, or anything below it, returns the
real config object; reading a step on the way to a declared key returns another view.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

# data.paths: the catalog (dvc.yaml interpolates these into every stage's deps and outs);
# evaluation.experiment: where runs are logged in MLflow, like MLFLOW_TRACKING_URI: it changes no result.
ALWAYS_ALLOWED = ("data.paths", "evaluation.experiment")


class UndeclaredParamError(LookupError):
    """A stage read a params key that its ``params:`` in dvc.yaml does not list."""


class ParamsView:
    """``obj`` seen through the declared keys; ``path`` is where ``obj`` sits in :class:`Params`."""

    __slots__ = ("_allowed", "_obj", "_path", "_stage")

    def __init__(self, obj: BaseModel, path: str, allowed: tuple[str, ...], stage: str) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_allowed", allowed)
        object.__setattr__(self, "_stage", stage)

    def _refuse(self, key: str) -> UndeclaredParamError:
        file, _, rest = key.partition(".")
        return UndeclaredParamError(
            f"stage {self._stage!r} reads params/{file}.yaml:{rest or '(all of it)'}, which its `params:` in "
            f"dvc.yaml does not declare; add it there, so that DVC re-runs the stage when it changes"
        )

    def __getattr__(self, name: str) -> Any:
        obj = self._obj
        if name not in type(obj).model_fields:
            attr = getattr(type(obj), name, None)
            if isinstance(attr, property):
                return attr.fget(self)
            if callable(attr) and not name.startswith("model_"):
                return attr.__get__(self)  # a helper method reads the fields through this view
            raise self._refuse(f"{self._path}.{name}" if self._path else name)
        key = f"{self._path}.{name}" if self._path else name
        value = getattr(obj, name)
        if any(key == a or key.startswith(a + ".") for a in self._allowed):
            return value
        if isinstance(value, BaseModel) and any(a.startswith(key + ".") for a in self._allowed):
            return ParamsView(value, key, self._allowed, self._stage)
        raise self._refuse(key)

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError("params are read-only")

    def __repr__(self) -> str:
        return f"ParamsView({self._path or 'params'} for stage {self._stage!r})"


def restrict(params: BaseModel, declared: list[str], stage: str) -> Any:
    """``params`` as stage ``stage`` may read it: the ``declared`` dotted keys and :data:`ALWAYS_ALLOWED`."""
    return ParamsView(params, "", tuple(declared) + ALWAYS_ALLOWED, stage)
