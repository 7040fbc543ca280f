"""The Grafana dashboard shipped in docs/grafana queries what a running gateway really exports.

A gateway with configured models, the response cache on and a few requests made (a fallback, a
chat, a stream, an error, a cache hit) is scraped; every series a panel's PromQL names must be a family in that
scrape (a histogram's ``_bucket`` by its family), and every label a panel groups or filters by must
be a label of that family. A renamed metric or label breaks this test before it breaks a dashboard.
"""

import json
import os
import re

import openai

from metrics_helpers import scrape

DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "grafana", "alloy-dashboard.json")
SERIES = re.compile(r"\b(alloy_[a-z_]+)\b(\{[^}]*\})?")
GROUPING = re.compile(r"\bby \(([^)]*)\)")
FUNCTIONS = {"le"}  # histogram_quantile's own label


def family(name, families):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in families:
            return name[: -len(suffix)]
    return name


def test_every_panel_queries_series_and_labels_the_gateway_exports(start_gateway, start_mock):
    # Its first answer is a 503: "fast" (no retries) falls back to "backup", so fallbacks are counted.
    mock = start_mock("--api-key", "sk-provider", "--fault", "status=503", "--fail-times", "1")
    gateway = start_gateway(
        config=f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "sk-provider"

        [[models]]
        name = "fast"
        max_retries = 0
        fallbacks = ["backup"]
        deployments = [{{ provider = "openai", model = "gpt-4o-mini" }}]

        [[models]]
        name = "backup"
        deployments = [{{ provider = "openai", model = "gpt-4o-mini" }}]

        [cache]
        enabled = true
        """
    )
    sdk = openai.OpenAI(base_url=gateway.base + "/v1", api_key="unused", max_retries=0)
    for _ in range(2):  # the second is a cache hit
        sdk.chat.completions.create(model="fast", messages=[{"role": "user", "content": "dash"}])
    for _ in sdk.chat.completions.create(model="fast", messages=[{"role": "user", "content": "s"}], stream=True):
        pass
    try:
        sdk.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    except openai.NotFoundError:
        pass
    exported = scrape(gateway.base)
    labels = {}
    for (name, pairs), _ in exported.samples.items():
        labels.setdefault(family(name, exported.families), set()).update(label for label, _ in pairs)

    with open(DASHBOARD) as handle:
        dashboard = json.load(handle)
    checked = 0
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            named = SERIES.findall(expr)
            assert named, f"panel {panel['title']!r} queries no alloy series"
            for name, selector in named:
                base = family(name, exported.families)
                assert base in exported.families, f"panel {panel['title']!r}: {name} is not exported"
                used = set(re.findall(r"([a-z_]+)\s*[=!~]", selector)) if selector else set()
                assert used <= labels.get(base, set()), f"panel {panel['title']!r}: {name} has no label {used}"
                checked += 1
            for group in GROUPING.findall(expr):
                names = {label.strip() for label in group.split(",")} - FUNCTIONS
                series = {family(name, exported.families) for name, _ in named}
                assert any(names <= labels.get(s, set()) for s in series), f"panel {panel['title']!r}: by ({group})"
    assert checked >= len(dashboard["panels"])
