"""Which core runs, and whether both twins keep the one contract written in ``alloy/_core.pyi``."""

import ast
import importlib
import inspect
import os
import pathlib

import pytest

import alloy
import alloy.core

PURE_ONLY = os.environ.get("ALLOY_PURE") == "1"
PYI = pathlib.Path(alloy.__file__).with_name("_core.pyi")


def contract():
    """{name: node} for every top-level class, function and constant of the .pyi."""
    tree = ast.parse(PYI.read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


def contract_functions():
    """[(owner or None, name, [(param, default or NO_DEFAULT)])] for every def in the .pyi."""
    out = []
    for name, node in contract().items():
        if isinstance(node, ast.FunctionDef):
            out.append((None, name, _params(node)))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not _is_property(item):
                    out.append((name, item.name, _params(item)))
    return out


NO_DEFAULT = object()


def _is_property(node):
    return any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)


def _params(node):
    args = node.args.args
    defaults = [NO_DEFAULT] * (len(args) - len(node.args.defaults)) + [
        ast.literal_eval(d) for d in node.args.defaults
    ]
    return [(a.arg, d) for a, d in zip(args, defaults) if a.arg != "self"]


def test_implementation_selected():
    expected = "pure" if PURE_ONLY else "compiled"
    assert alloy.core.IMPLEMENTATION == expected


def test_compiled_core_loaded():
    if PURE_ONLY:
        pytest.skip("ALLOY_PURE=1: the pure twin was asked for")
    module = importlib.import_module("alloy._core")
    assert alloy.core.RequestParser is module.RequestParser
    assert pathlib.Path(module.__file__).suffix in (".so", ".pyd")


def test_selector_exports_the_contract():
    assert set(alloy.core.__all__) - {"IMPLEMENTATION"} == set(contract())


def test_selector_names_come_from_the_chosen_twin():
    module = importlib.import_module(
        "alloy._pycore" if alloy.core.IMPLEMENTATION == "pure" else "alloy._core"
    )
    for name in contract():
        assert getattr(alloy.core, name) is getattr(module, name), name


@pytest.mark.parametrize("name", sorted(contract()))
def test_twin_exports_contract_name(core, name):
    node = contract()[name]
    value = getattr(core, name)
    if isinstance(node, ast.ClassDef):
        assert isinstance(value, type)
    elif isinstance(node, ast.FunctionDef):
        assert callable(value)
    else:
        assert value is not None


@pytest.mark.parametrize(
    "owner,name,params",
    contract_functions(),
    ids=[f"{o}.{n}" if o else n for o, n, _ in contract_functions()],
)
def test_twin_signature_matches_contract(core, owner, name, params):
    obj = getattr(getattr(core, owner), name) if owner else getattr(core, name)
    if name == "__init__":
        # Extension types expose __init__ as a slot wrapper without a signature; the keyword
        # construction test below checks the same parameters on both twins.
        return
    sig = inspect.signature(obj)
    got = [
        (p.name, NO_DEFAULT if p.default is inspect.Parameter.empty else p.default)
        for p in sig.parameters.values()
        if p.name != "self"
    ]
    assert got == params


def test_constructors_take_contract_keywords(core):
    core.RequestParser(max_header_bytes=1024, max_body_bytes=2048)
    core.RequestParser()
    core.ResponseParser(head_request=True, max_header_bytes=1024)
    core.ResponseParser()
    core.SSESplitter(max_event_bytes=1024)
    core.SSESplitter()
    core.RouteTable()


def _public_set(module):
    """Public names a module defines itself (imports of other modules' names excluded)."""
    names = set()
    for name in dir(module):
        if name.startswith("_"):
            continue
        value = getattr(module, name)
        if inspect.ismodule(value):
            continue
        if getattr(value, "__module__", module.__name__) == module.__name__ or name in contract():
            if inspect.isclass(value) or callable(value) or name in contract():
                names.add(name)
    return names


def test_both_twins_export_the_same_public_names():
    if PURE_ONLY:
        pytest.skip("ALLOY_PURE=1: only the pure twin is under test")
    compiled = importlib.import_module("alloy._core")
    pure = importlib.import_module("alloy._pycore")
    assert _public_set(compiled) == _public_set(pure)


def test_twin_exports_nothing_outside_the_contract(core):
    assert _public_set(core) - set(contract()) == set()


def test_last_chunk_is_the_same_in_both(core):
    assert core.LAST_CHUNK == b"0\r\n\r\n"
