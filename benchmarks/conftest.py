"""Micro-benchmark fixtures: a quiet process and the implementations compared.

``pytest --benchmark-only`` (from the repository root) runs the files in this directory; a plain
``pytest`` skips them (``addopts = "--benchmark-skip"``), and then none of the fixtures below run,
so the test suite is never pinned to one CPU by accident.

While a benchmark runs:
- the garbage collector is frozen and disabled (allocation-heavy implementations would otherwise
  pay for collections triggered by the inputs other tests built);
- the process is pinned to one CPU (``ALLOY_BENCH_CPU``, default 0) so the scheduler does not
  move it between cores mid-measurement; the previous affinity is restored afterwards;
- glibc's allocator is tuned as the gateway tunes it at start (``alloy.malloc``): large buffers stay
  on the heap instead of being mapped and unmapped on every allocation. Without it a 1 MB body's
  copies measured page faults, not the parser (940 us against 29 us for the same code).

``impl`` is parametrized by each file (``@pytest.mark.parametrize("impl", [...], indirect=True)``)
with names from ``IMPLEMENTATIONS``; the fixture returns the module behind the name, or skips the
row with the reason when a library is not installed (the compiled core must be built for its row
to run: ``pip install -e .`` or ``python setup.py build_ext --inplace``).
"""

import gc
import importlib
import os

import benchlib
import pytest

from alloy.malloc import tune_allocator

IMPLEMENTATIONS = {
    "compiled": "alloy._core",
    "pure": "alloy._pycore",
    "httptools": "httptools",
    "h11": "h11",
    "orjson": "orjson",
    "json": "json",
    "python": None,  # a hand-written plain-Python alternative defined in the benchmark file
    "regex": "re",
}


@pytest.fixture
def impl(request):
    name = request.param
    module_name = IMPLEMENTATIONS[name]
    if module_name is None:
        return None
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        if name == "compiled":
            pytest.skip(f"compiled core alloy._core is not built ({exc}); run `pip install -e .`")
        pytest.skip(f"{module_name} is not installed ({exc}); `pip install -e .[test]`")


@pytest.fixture(autouse=True)
def _quiet_process():
    cpu = int(os.environ.get("ALLOY_BENCH_CPU", "0"))
    previous = os.sched_getaffinity(0)
    if cpu in previous:
        os.sched_setaffinity(0, {cpu})
    tune_allocator()  # once is enough (the thresholds stay set); cheap to repeat
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        os.sched_setaffinity(0, previous)


@pytest.hookimpl(optionalhook=True)  # a pytest-benchmark hook: plain pytest without the plugin still loads this file
def pytest_benchmark_update_json(config, benchmarks, output_json):
    """``--benchmark-json`` files get committed under results/: no absolute path of this machine in
    the environment pytest-benchmark records (``benchlib.portable``)."""
    for key in ("machine_info", "commit_info"):
        if key in output_json:
            output_json[key] = benchlib.portable(output_json[key])


@pytest.fixture
def record(request, benchmark):
    """``record(group, correct)``: puts the row in its comparison group and records the
    implementation's name and whether its output matched the reference."""

    def _record(group, correct):
        benchmark.group = group
        benchmark.extra_info["impl"] = request.node.callspec.params["impl"]
        benchmark.extra_info["correct"] = bool(correct)

    return _record
