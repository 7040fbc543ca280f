"""The gate's two builds: ``alloy/governance/gate.py`` compiled with ``_gate.pxd`` (what a keyed
request runs when the core is compiled) and the same file as Python (the pure twin). Every
gateway test of governance runs on whichever the run selected (compiled, then ``ALLOY_PURE=1``);
these check that the selection is the expected one and that both builds answer alike."""

import pytest

import alloy.core
from alloy.core import scan_body
from alloy.governance import gate as pure_gate
from alloy.governance import gate_module

BUILDS = [pure_gate]
if alloy.core.IMPLEMENTATION == "compiled":
    from alloy.governance import _gate as compiled_gate

    BUILDS.append(compiled_gate)


def test_the_gate_is_compiled_exactly_when_the_core_is():
    module = gate_module()
    if alloy.core.IMPLEMENTATION == "compiled":
        assert module.__name__ == "alloy.governance._gate"
        assert module.__file__.endswith(".so")  # built by setup.py: an install without it fails here
        governance = module.Governance
        with pytest.raises((AttributeError, TypeError)):
            governance.not_a_field = 1  # an extension type: its fields are C slots
    else:
        assert module is pure_gate


def test_both_builds_offer_the_same_names():
    names = {name for name in vars(pure_gate) if not name.startswith("__")}
    for build in BUILDS:
        assert names <= set(vars(build)), names - set(vars(build))
        methods = {name for name in vars(pure_gate.Governance) if not name.startswith("__")}
        assert methods <= set(dir(build.Governance)), methods - set(dir(build.Governance))


@pytest.mark.parametrize("build", BUILDS, ids=lambda module: module.__name__.rpartition(".")[2])
def test_both_builds_read_a_request_alike(build):
    body = b'{"model": "m", "max_completion_tokens": 50, "messages": []}'
    assert build.estimate_tokens(body, scan_body(body)) == len(body) // 4 + 50
    assert build.estimate_tokens(b'{"max_tokens": 100}' + b" " * 81) == 100 + 100 // 4
    assert build.reserved_usage(body, scan_body(body)) == {"prompt_tokens": len(body) // 4, "completion_tokens": 50}
    assert build._bearer_token(b"BeArEr  sk-alloy-x ") == b"sk-alloy-x"
    assert build._bearer_token(b"Basic abc") is None and build._bearer_token(None) is None
    assert [build.usd(5), build.usd(0.002), build.usd(12.345)] == ["5.00", "0.002", "12.345"]
