"""The Prometheus text exposition format, version 0.0.4 (content type ``text/plain;
version=0.0.4``): what ``GET /metrics`` answers, made at the first scrape.

Each metric family is written once, its ``# HELP`` and ``# TYPE`` lines first, then its samples;
label values are escaped (backslash, double quote, line feed); histogram buckets are cumulative,
each named by its upper bound ``le``, ending with ``le="+Inf"`` (equal to ``_count``), followed by
``_sum`` and ``_count``.
"""

def escape_label(value):
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def number(value):
    """A sample value as Prometheus writes it: integers plainly, floats in Python's shortest
    round-trip form (``1e-05``, ``0.25``), infinities as ``+Inf``/``-Inf``."""
    if type(value) is int:
        return str(value)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def labels(names, values):
    if not names:
        return ""
    return "{" + ",".join(f'{name}="{escape_label(value)}"' for name, value in zip(names, values)) + "}"


class Exposition:
    """The text being built, one family at a time."""

    def __init__(self):
        self.lines = []

    def family(self, name, kind, help_text):
        self.lines.append(f"# HELP {name} {escape_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name, names, values, value):
        self.lines.append(f"{name}{labels(names, values)} {number(value)}")

    def metric(self, name, kind, help_text, names, samples):
        """A counter or gauge family: ``samples`` maps label values (tuples) to numbers."""
        self.family(name, kind, help_text)
        for values in sorted(samples):
            self.sample(name, names, values, samples[values])

    def histogram(self, name, help_text, names, bounds, series):
        """``series`` maps label values to (bucket counts, sum): ``len(bounds) + 1`` counts, each of
        observations in (previous bound, bound], the last above every bound (not cumulative)."""
        self.family(name, "histogram", help_text)
        bucket_names = (*names, "le")
        edges = [number(bound) for bound in bounds] + ["+Inf"]
        for values in sorted(series):
            counts, total = series[values]
            running = 0
            for edge, count in zip(edges, counts):
                running += count
                self.lines.append(f"{name}_bucket{labels(bucket_names, (*values, edge))} {running}")
            self.sample(name + "_sum", names, values, total)
            self.sample(name + "_count", names, values, running)

    def text(self):
        return ("\n".join(self.lines) + "\n").encode()
