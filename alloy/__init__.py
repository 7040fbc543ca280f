"""Alloy, an OpenAI-compatible AI gateway with a compiled request path.

The core (``alloy._core``) and the shell modules of the success path (``alloy._compiled``) are
compiled at install time. ``ALLOY_PURE=1`` runs the pure-Python twins instead: the core's twin
``alloy._pycore`` (picked by ``alloy.core``), and the shell modules' own Python sources, which a
finder installed here prefers to their compiled builds.
"""

import importlib.util
import os
import sys

from alloy._compiled import SHELL_MODULES
from alloy._version import __version__

PURE = os.environ.get("ALLOY_PURE") == "1"


class _SourceFirst:
    """Finds the compiled shell modules by their ``.py`` source, whatever else is beside it."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name not in SHELL_MODULES or not path:
            return None
        source = os.path.join(path[0], name.rpartition(".")[2] + ".py")
        return importlib.util.spec_from_file_location(name, source) if os.path.exists(source) else None


if PURE:
    sys.meta_path.insert(0, _SourceFirst)

__all__ = ["PURE", "__version__"]
