"""The success path's shell modules (alloy/_compiled.py) run compiled, and their Python sources run
as the pure twin under ALLOY_PURE=1: a build that silently fell back to the sources (or a pure run
that silently loaded the builds) would measure, or test, something else than it claims."""

import importlib

import alloy
from alloy._compiled import SHELL_MODULES


def test_each_shell_module_is_the_build_or_its_source_as_asked():
    for name in SHELL_MODULES:
        module = importlib.import_module(name)
        if alloy.PURE:
            assert module.__file__.endswith(".py"), f"{name} loaded from {module.__file__} under ALLOY_PURE=1"
        else:
            assert not module.__file__.endswith(".py"), f"{name} is not compiled: {module.__file__}"
