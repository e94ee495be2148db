"""Frozen dataclass configs that round-trip through JSON, TOML files and ``KEY=VALUE`` strings.

Every model and the trainer take a frozen dataclass. :func:`to_dict` / :func:`from_dict` convert it
to and from plain JSON types (tuples become lists and come back as tuples), unknown keys are an error
that lists the valid ones, and :func:`parse_overrides` turns ``["latent_dim=8", "beta=0.5"]`` from the
command line into typed values using the dataclass's annotations.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from deepgen.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")

#: Version of the config schema stored in every checkpoint and config.json; bump it when a field's
#: meaning changes, and teach :func:`from_dict` callers to migrate older versions.
CONFIG_VERSION = 1


def to_dict(cfg) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) dataclass."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            v = to_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def _split_list(text: str) -> list:
    """Items of a list written on the command line: ``[128, 128]``, ``128,128``, ``(128,128)``, ``128 128``.

    Users write lists the way their shell history or a JSON file has them, so brackets,
    parentheses, JSON and spaces are all accepted; a JSON list keeps its item types.
    """
    text = text.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
    if len(text) >= 2 and (text[0], text[-1]) in (("[", "]"), ("(", ")")):
        text = text[1:-1]
    return [v for v in text.replace(",", " ").split() if v]


def _coerce(tp, value, where: str):
    """Convert a JSON/TOML/string value to annotation ``tp``; raise ConfigError when it cannot."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        members = [a for a in args if a is not type(None)]
        for a in members:
            try:
                return _coerce(a, value, where)
            except ConfigError:
                continue
        names = " or ".join(getattr(a, "__name__", str(a)) for a in members)
        optional = " or none" if len(members) < len(args) else ""
        raise ConfigError(f"{where}: cannot read {value!r} as {names}{optional}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = _split_list(value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(item, v, where) for v in value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return from_dict(tp, value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp in (int, float, str):
        if tp in (int, float) and isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if tp is int:
            try:
                f = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: expected int, got {value!r}") from None
            if not f.is_integer():
                raise ConfigError(f"{where}: expected an integer, got {value!r}")
            return int(f)
        try:
            return tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
    return value


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from a dict, converting types; unknown keys list the valid ones."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(sorted(unknown))} for {cls.__name__}; "
            f"valid: {', '.join(sorted(names)) or '(none)'}"
        )
    kwargs = {k: _coerce(hints[k], v, f"{cls.__name__}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{cls.__name__}: {e}") from None


def replace(cfg: T, **changes) -> T:
    """``dataclasses.replace`` with the same type conversion as :func:`from_dict`."""
    merged = {**to_dict(cfg), **changes}
    return from_dict(type(cfg), merged)


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; values are typed later by :func:`from_dict`."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"option {item!r} is not KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = v.strip()
    return out


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON config file into a dict (sections ``model`` and ``train``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        if path.suffix == ".toml":
            with open(path, "rb") as fh:
                return tomllib.load(fh)
        with open(path) as fh:
            return json.load(fh)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {e}") from None


def parse_duration(text: str | float) -> float:
    """Seconds in a duration: a number of seconds (``"90"``, ``90.5``) or amounts with units ``h``,
    ``m``, ``s`` (``"2h"``, ``"1h30m"``, ``"45m"``, ``"1.5h"``, ``"10m30s"``)."""
    import re

    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    s = str(text).strip().lower().replace(" ", "")
    try:
        return float(s)
    except ValueError:
        pass
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", s)
    if not parts or "".join(n + u for n, u in parts) != s or len({u for _, u in parts}) != len(parts):
        raise ConfigError(f"cannot read {text!r} as a duration: give seconds, or e.g. 2h, 45m, 1h30m, 90s")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def check_positive(cfg, *names: str) -> None:
    """Raise ConfigError when any named field of ``cfg`` is not > 0 (called from ``__post_init__``)."""
    for n in names:
        v = getattr(cfg, n)
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ConfigError(f"{type(cfg).__name__}.{n} must be a finite number > 0, got {v}")


def config_fields(cls, which: str = "Config") -> list[dict]:
    """Name, type, default and description of each field of ``cls.Config`` (or ``cls.SampleConfig``).

    Descriptions come from the dataclass docstring's ``name: text`` lines (for ``deepgen list -v``
    and ``--help``).
    """
    dc = getattr(cls, which)
    docs = field_docs(dc)
    return [
        {"name": f.name, "type": str(f.type), "default": f.default, "help": docs.get(f.name, "")}
        for f in dataclasses.fields(dc)
    ]


def field_docs(dc: type) -> dict[str, str]:
    """``{field: description}`` parsed from lines ``name: text`` (or ``a, b: text``) of a docstring;
    a subclass's docstring describes its own fields and its bases' describe theirs."""
    import re

    out: dict[str, str] = {}
    names = {f.name for f in dataclasses.fields(dc)}
    docs = [k.__doc__ or "" for k in reversed(dc.__mro__) if dataclasses.is_dataclass(k)]
    current: list[str] = []
    for line in "\n".join(docs).splitlines():
        m = re.match(r"^\s*([\w, ]+):\s*(.*)$", line)
        keys = [k.strip() for k in m.group(1).split(",")] if m else []
        if keys and all(k in names for k in keys):
            current = keys
            for k in keys:
                out[k] = m.group(2).strip()
        elif current and line.strip() and not line.strip().endswith(":"):
            for k in current:
                out[k] += " " + line.strip()
        else:
            current = []
    return out
