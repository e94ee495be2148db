"""One table of models: the command line, the tests and checkpoint loading all read it.

>>> from deepgen.registry import register, get_model_class
>>> @register("my-model")
... class MyModel(GenerativeModel): ...

Registering a name twice is an error, so two files cannot silently shadow each other.
"""

from __future__ import annotations

import contextlib
import importlib

from deepgen.errors import UnknownNameError

_MODELS: dict[str, type] = {}

# Modules whose import registers models. Listed here (not discovered by scanning) so that importing
# deepgen stays fast and the set of models is explicit.
_MODEL_MODULES = (
    "deepgen.models.baselines",
    "deepgen.models.vae",
    "deepgen.models.gan",
)


def register(name: str):
    """Class decorator: add a :class:`~deepgen.models.base.GenerativeModel` subclass under ``name``."""

    def wrap(cls):
        if name in _MODELS and _MODELS[name] is not cls:
            raise RuntimeError(f"model name {name!r} registered twice ({_MODELS[name]} and {cls})")
        cls.name = name
        _MODELS[name] = cls
        return cls

    return wrap


@contextlib.contextmanager
def temporary(name: str, cls: type):
    """Register ``cls`` as ``name`` for the duration of a ``with`` block (tests, experiments)."""
    register(name)(cls)
    try:
        yield cls
    finally:
        _MODELS.pop(name, None)


def _load_all() -> None:
    for mod in _MODEL_MODULES:
        importlib.import_module(mod)


def model_names() -> list[str]:
    """All registered model names, sorted."""
    _load_all()
    return sorted(_MODELS)


def get_model_class(name: str) -> type:
    """The model class registered as ``name``; an unknown name lists the valid ones."""
    _load_all()
    try:
        return _MODELS[name]
    except KeyError:
        raise UnknownNameError("model", name, _MODELS) from None


def model_table() -> list[dict]:
    """One row per model: name, family, density kind, summary (first docstring line)."""
    rows = []
    for name in model_names():
        cls = _MODELS[name]
        doc = (cls.__doc__ or "").strip().splitlines()
        rows.append(
            {
                "name": name,
                "family": cls.family,
                "density": cls.density_summary,
                "summary": doc[0] if doc else "",
            }
        )
    return rows
