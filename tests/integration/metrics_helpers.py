"""Reading ``GET /metrics`` in tests: fetch it, and parse the Prometheus text format (0.0.4) strictly.

``parse`` checks what a scraper relies on while it reads: every family has one ``# HELP`` and one
``# TYPE`` line before its samples, a family's samples are contiguous, names and label sets are well
formed, and each histogram's buckets are sorted by ``le``, cumulative (never decreasing), end with
``le="+Inf"`` equal to its ``_count``, with a ``_sum`` beside them. When ``prometheus_client`` is
installed its own parser reads the text too.
"""

import math
import re
import urllib.error
import urllib.request

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def fetch(base, key=None, path="/metrics"):
    """(status, content type, body text) of GET ``base + path``."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(base + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("content-type"), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("content-type"), error.read().decode()


def scrape(base, key=None):
    status, content_type, text = fetch(base, key)
    assert status == 200, text
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    return parse(text)


class Scrape:
    def __init__(self, families, samples):
        self.families = families  # name -> (type, help)
        self.samples = samples  # (name, ((label, value), ...)) -> float

    def value(self, name, **labels):
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def series(self, name):
        """{labels dict as a sorted tuple: value} of one sample name."""
        return {labels: value for (sample, labels), value in self.samples.items() if sample == name}

    def total(self, name, **match):
        """The sum of ``name`` over the series whose labels include ``match``."""
        return sum(
            value for labels, value in self.series(name).items() if all(dict(labels).get(k) == v for k, v in match.items())
        )

    def label_values(self, name, label):
        return {dict(labels).get(label) for labels in self.series(name)}


def _unescape(value):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], value)


def _family_of(name, families):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and families.get(name[: -len(suffix)], ("",))[0] == "histogram":
            return name[: -len(suffix)]
    return name


def parse(text):
    assert text.endswith("\n"), "the exposition ends with a line feed"
    families, helps, samples = {}, {}, {}
    current = None
    finished = set()
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(NAME, name) and name not in helps, line
            helps[name] = help_text
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in TYPES and name not in families, line
            assert name in helps, f"{name}: HELP comes before TYPE"
            families[name] = (kind, helps[name])
            if current is not None:
                finished.add(current)
            current = name
            continue
        assert not line.startswith("#") and line.strip(), f"unexpected line {line!r}"
        match = SAMPLE.match(line)
        assert match, f"malformed sample {line!r}"
        name, label_text, value = match.groups()
        family = _family_of(name, families)
        assert family == current and family not in finished, f"{name}: not in its family's group"
        labels = []
        if label_text:
            consumed = ",".join(m.group(0) for m in LABEL.finditer(label_text))
            assert consumed == label_text, f"malformed labels in {line!r}"
            labels = [(m.group(1), _unescape(m.group(2))) for m in LABEL.finditer(label_text)]
            assert len({k for k, _ in labels}) == len(labels), line
        key = (name, tuple(sorted(labels)))
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(value)
    scrape = Scrape(families, samples)
    for name, (kind, _) in families.items():
        if kind == "histogram":
            _check_histogram(scrape, name)
    _check_with_prometheus_client(text, families)
    return scrape


def _check_histogram(scrape, name):
    groups = {}
    for labels, value in scrape.series(name + "_bucket").items():
        rest = tuple((k, v) for k, v in labels if k != "le")
        le = dict(labels)["le"]
        groups.setdefault(rest, []).append((math.inf if le == "+Inf" else float(le), value))
    assert set(groups) == set(scrape.series(name + "_count")) == set(scrape.series(name + "_sum")), name
    for rest, buckets in groups.items():
        buckets.sort()
        assert buckets[-1][0] == math.inf, f"{name}{rest}: no +Inf bucket"
        counts = [count for _, count in buckets]
        assert counts == sorted(counts), f"{name}{rest}: buckets decrease: {buckets}"
        assert counts[-1] == scrape.samples[(name + "_count", rest)], f"{name}{rest}: +Inf != _count"


def _check_with_prometheus_client(text, families):
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        return
    parsed = {family.name: family.type for family in text_string_to_metric_families(text)}
    for name, (kind, _) in families.items():
        # prometheus_client names a counter family without its _total suffix.
        assert parsed.get(name.removesuffix("_total") if kind == "counter" else name) == kind, name
