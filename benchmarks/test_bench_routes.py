"""Routing lookup: model name -> (target, upstream model), in a table of 50 exact names, 10 provider
prefixes and 10 wildcards, for a hit of each kind and a miss (which tries every rule).

The alternatives implement the same lookup order in plain Python: a dict for exact names and
prefixes, then the wildcards either as ``fnmatch``-compiled regexes ("regex") or as one combined
alternation regex with a named group per pattern ("python", a hand-tuned variant).
"""

import fnmatch
import re

import pytest

from data import EXACT_MODELS, PREFIXES, ROUTE_LOOKUPS, WILDCARDS


def _ordered_wildcards():
    # most literal characters first, then insertion order (the RouteTable contract)
    return sorted(WILDCARDS, key=lambda p: (-(len(p) - p.count("*")), WILDCARDS.index(p)))


def build_core(core):
    table = core.RouteTable()
    for name in EXACT_MODELS:
        table.add_exact(name, f"exact:{name}")
    for prefix in PREFIXES:
        table.add_prefix(prefix, f"prefix:{prefix}")
    for pattern in WILDCARDS:
        table.add_wildcard(pattern, f"wildcard:{pattern}")
    return table.lookup


def build_regex(re_module):
    exact = {name: f"exact:{name}" for name in EXACT_MODELS}
    prefixes = {prefix: f"prefix:{prefix}" for prefix in PREFIXES}
    patterns = [(re_module.compile(fnmatch.translate(p), re.DOTALL), f"wildcard:{p}") for p in _ordered_wildcards()]

    def lookup(model):
        target = exact.get(model)
        if target is not None:
            return target, model
        head, sep, rest = model.partition("/")
        if sep:
            target = prefixes.get(head)
            if target is not None:
                return target, rest
        for pattern, target in patterns:
            if pattern.match(model):
                return target, model
        return None

    return lookup


def build_python(_):
    exact = {name: f"exact:{name}" for name in EXACT_MODELS}
    prefixes = {prefix: f"prefix:{prefix}" for prefix in PREFIXES}
    ordered = _ordered_wildcards()
    alternatives = "|".join(f"(?P<w{i}>{'.*'.join(map(re.escape, p.split('*')))})" for i, p in enumerate(ordered))
    combined = re.compile(f"(?:{alternatives})\\Z", re.DOTALL)
    targets = {f"w{i}": f"wildcard:{p}" for i, p in enumerate(ordered)}

    def lookup(model):
        target = exact.get(model)
        if target is not None:
            return target, model
        head, sep, rest = model.partition("/")
        if sep:
            target = prefixes.get(head)
            if target is not None:
                return target, rest
        match = combined.match(model)
        if match is not None:
            return targets[match.lastgroup], model
        return None

    return lookup


BUILDERS = {"compiled": build_core, "pure": build_core, "regex": build_regex, "python": build_python}


@pytest.mark.parametrize("kind", list(ROUTE_LOOKUPS))
@pytest.mark.parametrize("impl", list(BUILDERS), indirect=True)
def test_route_lookup(benchmark, record, request, impl, kind):
    model, expected = ROUTE_LOOKUPS[kind]
    lookup = BUILDERS[request.node.callspec.params["impl"]](impl)
    result = lookup(model)
    record(f"route lookup: {kind}", (tuple(result) if result is not None else None) == expected)
    benchmark(lookup, model)
