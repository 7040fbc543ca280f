import os
import sys

from alloy._version import __version__

__all__ = ["__version__"]

# The hot modules of the request path are compiled under their own names (setup.py), with the
# declarations of the .pxd next to each .py; the .py is its own pure twin. Python prefers an
# extension module to a source file in the same directory, so with ALLOY_PURE=1 this finder sends
# exactly these names to their .py files.
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

if os.environ.get("ALLOY_PURE") == "1":
    import importlib.machinery
    import importlib.util

    class _PureTwins:
        """Imports the listed hot modules from their .py source, never a compiled build."""

        @staticmethod
        def find_spec(name, path=None, target=None):
            if name not in HOT_MODULES:
                return None
            source = os.path.join(os.path.dirname(__file__), *name.split(".")[1:]) + ".py"
            loader = importlib.machinery.SourceFileLoader(name, source)
            return importlib.util.spec_from_file_location(name, source, loader=loader)

    sys.meta_path.insert(0, _PureTwins)
