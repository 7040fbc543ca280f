"""What a request cost: the shipped price table (prices.json, USD per million tokens: input, output,
cached input), overridden per model by ``[governance.prices]``; nothing is fetched at start.

A model is priced by the served name (what went upstream), then the name the client asked for;
each exactly, then by the longest listed prefix followed by ``-`` or ``:`` (so a dated snapshot
such as ``gpt-4o-2024-08-06`` costs what ``gpt-4o`` costs), after dropping a ``provider/`` prefix.
A model found nowhere costs 0 and its tokens are still counted. Cached input tokens are part of
the input tokens (as OpenAI reports them) and are billed at the cached price instead: the core's
``usage_cost`` reads an answer's usage and prices it in one call.
"""

import json
from importlib import resources

# The live counters' unit of spend: nano-USD. Each request's cost is rounded to it on its own, so
# it must be far below any request's cost (an embedding of a few tokens costs ~2e-7 USD: micro-USD
# rounded that to nothing, and a budget never saw it); an int64 of them holds 9 billion USD.
SPEND_UNIT = 1_000_000_000


def shipped_prices():
    table = json.loads(resources.files("alloy.governance").joinpath("prices.json").read_text())
    return {model: tuple(price) for model, price in table.items() if not model.startswith("_")}


class Prices:
    def __init__(self, overrides=()):
        self.table = shipped_prices()
        self.table.update(dict(overrides))
        self.found = {}  # name -> price or None: each name is resolved once

    def price(self, *names):
        for name in names:
            if not name:
                continue
            found = self.found.get(name, False)
            if found is False:
                found = self._resolve(name)
                if len(self.found) < 10000:  # client-chosen names: the memo stays bounded
                    self.found[name] = found
            if found is not None:
                return found
        return None

    def _resolve(self, name):
        table = self.table
        for candidate in (name, name.rpartition("/")[2]):
            if candidate in table:
                return table[candidate]
            best = None
            for listed in table:
                if candidate.startswith(listed) and candidate[len(listed) : len(listed) + 1] in ("-", ":", "@"):
                    if best is None or len(listed) > len(best):
                        best = listed
            if best is not None:
                return table[best]
        return None
