"""The examples in the docstrings are tests: a broken one fails the suite (and CI)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "aiops.promql",
    "aiops.logql",
    "aiops.querylang",
    "aiops.logs.templates",
    "aiops.logs.shapes",
    "aiops.timeutil",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


def test_the_modules_with_examples_have_some():
    for name in ("aiops.promql", "aiops.logql", "aiops.logs.templates"):
        finder = doctest.DocTestFinder()
        examples = sum(len(t.examples) for t in finder.find(importlib.import_module(name)))
        assert examples > 0, name
