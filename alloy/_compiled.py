# The shell modules on the success path that the build compiles with Cython from their own Python
# source (pure-Python mode, with a .pxd beside the source where one declares typed classes). The
# same source runs uncompiled as the pure twin under ALLOY_PURE=1 (see alloy/__init__.py), so the
# two can never drift apart. setup.py reads this file without importing alloy.
SHELL_MODULES = (
    "alloy.client_connection",
    "alloy.endpoints",
    "alloy.call",
    "alloy.attempts",
    "alloy.balancer",
    "alloy.sending",
    "alloy.relay",
    "alloy.upstream.connection",
    "alloy.upstream.pool",
)
