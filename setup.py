"""Build of the compiled modules (the core, and the gate compiled from its Python source); all
metadata lives in pyproject.toml.

Options are environment variables read at build time (``ALLOY_DEBUG=1 pip install .``, or
``python setup.py build_ext --inplace`` in a checkout):
  ALLOY_DEBUG=1           -O0 -g and Cython line tracing (for debuggers, coverage and profilers)
  ALLOY_CYTHON_ANNOTATE=1 write the HTML annotation next to the sources
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("ALLOY_DEBUG") == "1"

COMPILE = {
    # -g0: Python's own flags ask for debug info, ~70% of each extension's size on disk (not in RAM)
    "extra_compile_args": ["-O0", "-g"] if DEBUG else ["-O3", "-g0"],
    "define_macros": [("CYTHON_TRACE", "1")] if DEBUG else [],
}
extensions = [
    Extension("alloy._core", ["alloy/_core.pyx"], **COMPILE),
    # The gate of a keyed request, compiled from its Python source with the declarations of
    # alloy/governance/_gate.pxd; the .py itself is the pure twin (alloy.governance picks).
    Extension("alloy.governance._gate", ["alloy/governance/gate.py"], **COMPILE),
]
# The hot modules of the request path, each compiled under its own name from its .py with the
# declarations of the .pxd next to it (cdef classes calling each other through their vtables); the
# .py is its own pure twin (ALLOY_PURE=1: alloy/__init__.py imports the source).
HOT_MODULES = (
    "alloy.call",
    "alloy.relay",
    "alloy.upstream.connection",
    "alloy.upstream.pool",
    "alloy.client_connection",
    "alloy.endpoints",
    "alloy.paths",
    "alloy.pipeline",
    "alloy.balancer",
    "alloy.routing",
    "alloy.auth",
    "alloy.sending",
    "alloy.observability.metrics",
    "alloy.observability.access_log",
    "alloy.usage",
    "alloy.governance.identity",
)
extensions += [Extension(name, [name.replace(".", "/") + ".py"], **COMPILE) for name in HOT_MODULES]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        annotate=os.environ.get("ALLOY_CYTHON_ANNOTATE") == "1",
        compiler_directives={"linetrace": DEBUG},
    ),
)
