"""Shared fixtures of the test suite.

``core`` runs a test once per core twin: ``compiled`` (``alloy._core``) and ``pure``
(``alloy._pycore``). Both modules are imported directly, not through ``alloy.core``, so each twin is
tested whatever ``alloy.core`` picked. A compiled core that does not import makes every "compiled"
test fail, never skip: set ``ALLOY_PURE=1`` to run the pure twin alone on purpose.
"""

import importlib
import os

import pytest

PURE_ONLY = os.environ.get("ALLOY_PURE") == "1"
TWIN_MODULES = {"compiled": "alloy._core", "pure": "alloy._pycore"}
TWINS = ["pure"] if PURE_ONLY else ["compiled", "pure"]


# Session scope: the twins are stateless modules, and hypothesis refuses function-scoped fixtures.
@pytest.fixture(scope="session", params=TWINS)
def core(request):
    name = TWIN_MODULES[request.param]
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.fail(
            f"{name} did not import ({exc}); build it with "
            "`python setup.py build_ext --inplace`, or set ALLOY_PURE=1 to test the pure twin only",
            pytrace=False,
        )
