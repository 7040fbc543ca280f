"""The request path's hot modules, each compiled from its own .py with the .pxd next to it (setup.py)
and that .py its own pure twin (``ALLOY_PURE=1``: ``alloy/__init__.py`` imports the source). Every
other test runs on whichever build the run selected; these check the selection itself."""

import ast
import importlib
import pathlib

import pytest

import alloy
import alloy.core

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_setup_py_builds_exactly_the_modules_the_package_names_hot():
    tree = ast.parse((ROOT / "setup.py").read_text())
    built = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "HOT_MODULES" for t in node.targets)
    )
    assert tuple(built) == alloy.HOT_MODULES
    for name in alloy.HOT_MODULES:  # each has its declarations next to its source
        assert (ROOT / (name.replace(".", "/") + ".pxd")).is_file(), name


@pytest.mark.parametrize("name", alloy.HOT_MODULES)
def test_each_hot_module_is_compiled_exactly_when_the_core_is(name):
    module = importlib.import_module(name)
    if alloy.core.IMPLEMENTATION == "compiled":
        assert module.__file__.endswith(".so"), module.__file__  # an install without it fails here
    else:
        assert module.__file__.endswith(".py"), module.__file__


@pytest.mark.skipif(alloy.core.IMPLEMENTATION != "compiled", reason="the compiled build's classes")
def test_the_hot_classes_are_extension_types():
    from alloy.call import Call
    from alloy.client_connection import ClientConnection
    from alloy.relay import PassthroughRelay
    from alloy.upstream import UpstreamRequest
    from alloy.upstream.connection import UpstreamConnection

    for cls in (Call, ClientConnection, PassthroughRelay, UpstreamConnection, UpstreamRequest):
        with pytest.raises((AttributeError, TypeError)):
            cls.not_a_field = 1  # an extension type: its fields are C slots, its methods in a vtable


@pytest.mark.skipif(alloy.core.IMPLEMENTATION != "compiled", reason="the compiled build's classes")
def test_the_core_classes_the_shell_is_typed_with_are_those_alloy_core_gives():
    """The hot modules' .pxd files cimport these from alloy._core (alloy/_core.pxd) while their .py
    imports them from alloy.core: a field typed with one would refuse any other class's object."""
    import alloy._core
    from alloy.upstream import UpstreamRequest
    from alloy.upstream.connection import UpstreamConnection

    for name in ("Request", "RequestParser", "ResponseHead", "ResponseParser", "ScanResult", "RouteTable"):
        assert getattr(alloy.core, name) is getattr(alloy._core, name), name
    connection = UpstreamConnection.__new__(UpstreamConnection)
    connection._parser = alloy.core.ResponseParser()
    with pytest.raises(TypeError):
        connection._parser = object()  # typed with the core's class in connection.pxd
    with pytest.raises(TypeError):
        connection._request = object()
    assert UpstreamRequest.__module__ == "alloy.upstream.connection"  # an extension type needs a compiled module


def test_the_generated_c_of_every_compiled_module_stays_out_of_the_installed_package():
    # Cython writes a .c next to each source; installed, the compiled package would carry ~1 MB of
    # it per module (the observability listeners' once did: 5.3 -> 8.8 MB installed).
    import tomllib

    excluded = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["exclude-package-data"]
    for name in (*alloy.HOT_MODULES, "alloy._core", "alloy.governance._gate"):
        package = name.rpartition(".")[0]
        assert "*.c" in excluded.get(package, []), package
