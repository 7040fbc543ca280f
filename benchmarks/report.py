#!/usr/bin/env python3
"""Turn a saved pytest-benchmark run into a markdown comparison report (and a PNG chart).

    pytest --benchmark-only --benchmark-json .benchmarks/micro.json
    python benchmarks/report.py .benchmarks/micro.json            # markdown on stdout
    python benchmarks/report.py -o report.md --png report.png     # files
    python benchmarks/report.py                                   # newest .benchmarks/**/*.json

One table per ``benchmark.group``, fastest first: median time, operations per second, speed-up
against the slowest row and against the pure-Python twin (``impl == "pure"``), and whether the row's
output matched the reference (``extra_info["correct"]``). A summary table gives compiled vs pure per
group. The chart needs matplotlib (``pip install .[bench]``); without it the report says so and
the markdown is still written. Numbers only ever come from the JSON: nothing is typed in.
"""

import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def newest_saved_run(root="."):
    runs = glob.glob(os.path.join(root, ".benchmarks", "**", "*.json"), recursive=True)
    if not runs:
        raise SystemExit("report.py: no saved run under .benchmarks/ (use --benchmark-json FILE or --benchmark-autosave)")
    return max(runs, key=os.path.getmtime)


def format_time(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            return f"{seconds / scale:,.2f} {unit}" if seconds / scale < 100 else f"{seconds / scale:,.0f} {unit}"
    return f"{seconds} s"


def format_ops(ops):
    if ops >= 1e6:
        return f"{ops / 1e6:,.2f} M"
    if ops >= 1e3:
        return f"{ops / 1e3:,.1f} k"
    return f"{ops:,.1f}"


def impl_of(bench):
    return (bench.get("extra_info") or {}).get("impl") or (bench.get("params") or {}).get("impl") or bench["name"]


def groups_of(run):
    groups = {}
    for bench in run["benchmarks"]:
        groups.setdefault(bench.get("group") or bench["name"], []).append(bench)
    for rows in groups.values():
        rows.sort(key=lambda b: b["stats"]["median"])
    return groups


def header(run, source):
    commit = run.get("commit_info") or {}
    machine = run.get("machine_info") or {}
    cpu = (machine.get("cpu") or {}).get("brand_raw") or machine.get("processor") or "?"
    lines = [
        f"Source: `{benchlib.portable(source)}`  ",
        f"Date: {run.get('datetime', '?')}  ",
        f"Commit: {str(commit.get('id', '?'))[:12]}{' (dirty)' if commit.get('dirty') else ''}"
        f" on {commit.get('branch', '?')}  ",
        f"Machine: {machine.get('node', '?')}, {cpu}, {machine.get('system', '?')} {machine.get('release', '')}  ",
        f"Python: {machine.get('python_implementation', '?')} {machine.get('python_version', '?')}; "
        f"pytest-benchmark {run.get('version', '?')}",
        "",
    ]
    return lines


def group_table(name, rows):
    slowest = max(b["stats"]["median"] for b in rows)
    pure = next((b["stats"]["median"] for b in rows if impl_of(b) == "pure"), None)
    lines = [
        f"### {name}",
        "",
        "| Implementation | Median | ops/s | vs slowest | vs pure twin | Correct |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for bench in rows:
        median = bench["stats"]["median"]
        vs_pure = f"{pure / median:.2f}x" if pure else "n/a"
        correct = (bench.get("extra_info") or {}).get("correct")
        mark = "yes" if correct else ("**NO**" if correct is not None else "?")
        lines.append(
            f"| {impl_of(bench)} | {format_time(median)} | {format_ops(1.0 / median)} | "
            f"{slowest / median:.2f}x | {vs_pure} | {mark} |"
        )
    lines.append("")
    return lines


def summary_table(groups):
    lines = ["### Compiled core vs pure-Python twin", "", "| Group | Compiled | Pure | Speed-up |", "|---|---:|---:|---:|"]
    for name, rows in groups.items():
        by_impl = {impl_of(b): b["stats"]["median"] for b in rows}
        if "compiled" in by_impl and "pure" in by_impl:
            lines.append(
                f"| {name} | {format_time(by_impl['compiled'])} | {format_time(by_impl['pure'])} | "
                f"{by_impl['pure'] / by_impl['compiled']:.1f}x |"
            )
    lines.append("")
    return lines


def render(run, source):
    groups = groups_of(run)
    lines = ["## Micro-benchmarks", ""] + header(run, source)
    lines += summary_table(groups)
    for name in sorted(groups):
        lines += group_table(name, groups[name])
    incorrect = [b["name"] for b in run["benchmarks"] if (b.get("extra_info") or {}).get("correct") is False]
    if incorrect:
        lines += ["**Rows whose output did not match the reference:** " + ", ".join(incorrect), ""]
    return "\n".join(lines)


def chart(run, path):
    try:
        import matplotlib  # optional: the `bench` extra

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: matplotlib is not installed (pip install .[bench]); no chart written", file=sys.stderr)
        return False
    groups = groups_of(run)
    names = sorted(groups)
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 1.2 + 0.45 * sum(len(groups[n]) for n in names) + 0.6 * len(names)))
    if len(names) == 1:
        axes = [axes]
    for ax, name in zip(axes, names):
        rows = groups[name][::-1]
        labels = [impl_of(b) for b in rows]
        values = [b["stats"]["median"] * 1e6 for b in rows]
        colors = ["#d9534f" if label == "compiled" else "#5bc0de" if label == "pure" else "#999999" for label in labels]
        ax.barh(labels, values, color=colors)
        ax.set_xlim(0, max(values) * 1.25)
        ax.set_title(name, fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
        for y, value in enumerate(values):
            ax.text(value, y, f" {format_time(value / 1e6)}", va="center", fontsize=7)
    axes[-1].set_xlabel("median time per call (µs; shorter is faster)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", nargs="?", help="pytest-benchmark JSON (default: newest .benchmarks/**/*.json)")
    parser.add_argument("-o", "--output", help="write the markdown here instead of stdout")
    parser.add_argument("--png", help="write a bar chart here (needs matplotlib)")
    args = parser.parse_args(argv)
    source = args.json or newest_saved_run()
    with open(source) as f:
        run = json.load(f)
    if not run.get("benchmarks"):
        raise SystemExit(f"report.py: {source} holds no benchmarks (was it run with --benchmark-only?)")
    text = render(run, source)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    if args.png:
        chart(run, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
