"""Docstring examples run: every ``>>>`` in the package is executed as a doctest.

An example that cannot run on its own (it would need a trained run or a data download) is written
as plain indented code instead, so that every ``>>>`` a reader sees is known to work.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import deepgen

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(deepgen.__path__, prefix="deepgen.") if ".__main__" not in m.name
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes files writes them here
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert res.failed == 0, f"{res.failed} of {res.attempted} docstring examples failed in {name}"
