"""Build of the compiled core only; all metadata lives in pyproject.toml.

Options are environment variables read at build time (``ALLOY_DEBUG=1 pip install .``, or
``python setup.py build_ext --inplace`` in a checkout):
  ALLOY_DEBUG=1           -O0 -g and Cython line tracing (for debuggers, coverage and profilers)
  ALLOY_CYTHON_ANNOTATE=1 write the HTML annotation next to the sources
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("ALLOY_DEBUG") == "1"

extension = Extension(
    "alloy._core",
    ["alloy/_core.pyx"],
    extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
    define_macros=[("CYTHON_TRACE", "1")] if DEBUG else [],
)

setup(
    ext_modules=cythonize(
        [extension],
        language_level=3,
        annotate=os.environ.get("ALLOY_CYTHON_ANNOTATE") == "1",
        compiler_directives={"linetrace": DEBUG},
    ),
)
