"""Who a request is, once its key is known: a ``KeyIdentity`` (the key, its team, their limits and
models, as the keyring built them at its last reload) and the ``ModelRule`` a key or team holds
its models to.

The gate reads these on every keyed request (``alloy.governance.gate``), so they are compiled:
this file with the declarations of ``identity.pxd`` (setup.py's hot modules), the .py its own
pure twin. They are built by ``alloy.governance.keyring`` and not changed after, except
``revoked`` (a key the counters table has no room for). Their constructors use list comprehensions
where generator expressions would read as well: Cython 3 fails to compile a generator expression
nested in another inside an extension type.
"""

import fnmatch


class ModelRule:
    """The models a key or a team may use: names and aliases as given, and wildcards."""

    __slots__ = ("exact", "patterns", "decided")

    def __init__(self, models):
        self.exact = frozenset([m for m in models if not any([c in m for c in "*?["])])
        self.patterns = tuple([m for m in models if m not in self.exact])
        self.decided = {}

    def allows(self, name):
        decided = self.decided.get(name)
        if decided is None:
            decided = name in self.exact or any([fnmatch.fnmatchcase(name, p) for p in self.patterns])
            if len(self.decided) < 4096:
                self.decided[name] = decided
        return decided


class KeyIdentity:
    """Who a request is: ``id``, ``name`` and ``team`` (read by the cache and the access log too);
    ``team_id`` is the team's lasting identity (a name passes to a new team when the old one is
    renamed or deleted), which the cache's namespaces are made of."""

    __slots__ = ("id", "name", "team", "team_id", "expires_at", "revoked", "scopes", "counts_tokens", "rules", "reported", "limits")

    def __init__(self, row, scopes):
        self.id = row["id"]
        self.name = row["name"]
        self.team = row["team"]
        self.team_id = scopes[1].id if len(scopes) > 1 else None
        self.expires_at = row["expires_at"]
        self.revoked = row["revoked_at"] is not None
        self.scopes = scopes
        self.counts_tokens = any([scope.tpm for scope in scopes])
        self.rules = tuple([scope.models for scope in scopes if scope.models is not None])
        # The x-ratelimit-* trios this key reports, each with the limits it is the tightest of:
        # ((kind, ((scope index, limit), ...)), ...), built once here rather than on each request.
        reported = []
        for kind in ("rpm", "tpm"):
            limits = tuple([(i, getattr(scope, kind)) for i, scope in enumerate(scopes) if getattr(scope, kind)])
            if limits:
                reported.append((kind, limits))
        self.reported = tuple(reported)
        # What the core's LimitCounters read of each scope (alloy.core: take, give_back).
        self.limits = tuple([(s.slot, s.rpm, s.tpm, s.max_parallel, s.budget, s.period, s.anchor) for s in scopes])

    def may_use(self, asked, aliased=None):
        """Every model rule (the key's, its team's) allows the name asked for, or (``aliased``) the
        configured model it is an alias of. Not the bare name of ``provider/model``: a key allowed
        ``gpt-4o`` would reach every provider serving a model of that name (``openai/*`` says so)."""
        for rule in self.rules:
            if not (rule.allows(asked) or (aliased is not None and rule.allows(aliased))):
                return False
        return True

    def __repr__(self):
        return f"KeyIdentity({self.name!r}, team={self.team!r})"
