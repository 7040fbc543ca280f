"""Build of the compiled parts; all metadata lives in pyproject.toml.

Two kinds of extension: the core (``alloy/_core.pyx`` and its ``.pxi`` includes, with its pure twin
``alloy/_pycore.py`` written apart), and the shell modules of the success path listed in
``alloy/_compiled.py``, compiled from their own Python source (Cython's pure-Python mode; a
``.pxd`` beside a source declares its typed classes), whose uncompiled source is their twin.

Options are environment variables read at build time (``ALLOY_DEBUG=1 pip install .``, or
``python setup.py build_ext --inplace`` in a checkout):
  ALLOY_DEBUG=1           -O0 -g and Cython line tracing (for debuggers, coverage and profilers)
  ALLOY_CYTHON_ANNOTATE=1 write the HTML annotation next to the sources
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("ALLOY_DEBUG") == "1"

ARGS = {
    "extra_compile_args": ["-O0", "-g"] if DEBUG else ["-O3"],
    "define_macros": [("CYTHON_TRACE", "1")] if DEBUG else [],
}


def shell_modules():
    """The names listed in alloy/_compiled.py, read without importing alloy."""
    namespace = {}
    with open(os.path.join("alloy", "_compiled.py")) as listing:
        exec(listing.read(), namespace)
    return namespace["SHELL_MODULES"]


extensions = [Extension("alloy._core", ["alloy/_core.pyx"], **ARGS)]
extensions += [Extension(name, [name.replace(".", "/") + ".py"], **ARGS) for name in shell_modules()]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        annotate=os.environ.get("ALLOY_CYTHON_ANNOTATE") == "1",
        compiler_directives={"linetrace": DEBUG},
    ),
)
