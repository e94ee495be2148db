"""One table of models: the command line, the tests and checkpoint loading all read it.

A model file registers its class with a decorator (as :mod:`deepgen.models.baselines` does)::

    @register("my-model")
    class MyModel(GenerativeModel): ...

Tests and experiments register for one ``with`` block (:func:`temporary`), which leaves the table
as it was:

>>> from deepgen.models.baselines import Independent
>>> from deepgen.registry import get_model_class, model_names, register, temporary
>>> class MyModel(Independent): ...
>>> with temporary("my-model", MyModel):
...     get_model_class("my-model") is MyModel, MyModel.name
(True, 'my-model')
>>> "my-model" in model_names()
False

Registering a name twice is an error, so two files cannot silently shadow each other:

>>> register("independent")(MyModel)
Traceback (most recent call last):
    ...
RuntimeError: model name 'independent' registered twice (...)
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil

from deepgen.errors import UnknownNameError

_MODELS: dict[str, type] = {}
_LOADED = False


def model_modules() -> list[str]:
    """Every module under ``deepgen.models`` (discovered, so a new model file cannot be missed)."""
    import deepgen.models as pkg

    return sorted(m.name for m in pkgutil.walk_packages(pkg.__path__, prefix="deepgen.models."))


def register(name: str):
    """Class decorator: add a :class:`~deepgen.models.base.GenerativeModel` subclass under ``name``."""

    def wrap(cls):
        from deepgen.models.base import FAMILIES

        if cls.family not in FAMILIES:
            raise RuntimeError(f"model {name!r}: family {cls.family!r} is not one of {', '.join(FAMILIES)}")
        if name in _MODELS and _MODELS[name] is not cls:
            raise RuntimeError(f"model name {name!r} registered twice ({_MODELS[name]} and {cls})")
        cls.name = name
        _MODELS[name] = cls
        return cls

    return wrap


@contextlib.contextmanager
def temporary(name: str, cls: type):
    """Register ``cls`` as ``name`` for the duration of a ``with`` block (tests, experiments)."""
    previous = _MODELS.pop(name, None)
    register(name)(cls)
    try:
        yield cls
    finally:
        _MODELS.pop(name, None)
        if previous is not None:  # a name registered before the block keeps its model
            _MODELS[name] = previous


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    for mod in model_modules():
        importlib.import_module(mod)
    _LOADED = True


def model_names_with(capability: str) -> list[str]:
    """Registered models that offer an input-driven capability (``complete``, ``translate``, ``edit``)."""
    _load_all()
    return sorted(n for n, c in _MODELS.items() if c.supports(capability))


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
                "conditional": "optional" if cls.condition_option and not cls.conditional else cls.conditional,
                "capabilities": cls.capabilities(),
                "summary": doc[0] if doc else "",
            }
        )
    return rows
