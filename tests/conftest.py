"""Shared fixtures of the test suite.

``core`` runs a test once per core twin: ``compiled`` (``alloy._core``) and ``pure``
(``alloy._pycore``). Both modules are imported directly, not through ``alloy.core``, so each twin is
tested whatever ``alloy.core`` picked. A compiled core that does not import makes every "compiled"
test fail, never skip: set ``ALLOY_PURE=1`` to run the pure twin alone on purpose.
"""

import importlib
import os
import pathlib

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


def pytest_sessionstart(session):
    """In a checkout, Python imports a module's build (.so) before its source: a source edited after
    ``python setup.py build_ext --inplace`` would be silently ignored by every compiled test."""
    if PURE_ONLY:
        return
    import alloy

    package = pathlib.Path(alloy.__file__).parent
    if not (package.parent / "setup.py").is_file():
        return  # an installed package: its build is its source's
    built_from = {"alloy._core": ["_core.pyx", *(p.name for p in package.glob("_core_*.pxi"))],
                  "alloy.governance._gate": ["governance/gate.py", "governance/_gate.pxd"]}  # fmt: skip
    for name in alloy.HOT_MODULES:
        path = name.removeprefix("alloy.").replace(".", "/")
        built_from[name] = [path + ".py", path + ".pxd"]
    stale = []
    for name, sources in built_from.items():
        stem = package / name.removeprefix("alloy.").replace(".", "/")
        builds = list(stem.parent.glob(stem.name + ".*.so"))
        newest = max(os.path.getmtime(package / source) for source in sources if (package / source).is_file())
        if builds and newest > max(os.path.getmtime(build) for build in builds):
            stale.append(name)
    if stale:
        pytest.exit(f"rebuild first (python setup.py build_ext --inplace): {', '.join(stale)} changed after the build", returncode=2)
