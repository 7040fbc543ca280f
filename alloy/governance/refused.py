"""Requests governance refused before anything went upstream, in the ledger: a key that is not one
(401 ``invalid_api_key``), a model the key may not use (404 ``model_not_found``), a rate limit or a
budget (429), shared limits out of reach (503). ``alloy usage`` shows them as ``refused``.

The pipeline reports them where the gate raises them (``Pipeline.authenticate`` and
``Pipeline.admit`` catch, report, raise again), and a keyed request routing refuses (a model
nothing routes, a body without a model: ``Pipeline.handle``), so an admitted request pays nothing
for this. A
refusal answered asynchronously (the shared limits' decision) ends its call, and the finish
listener records it like any call, with its error code.

Refusals are counted, not written one by one: within a ``flush_interval`` the refusals of one
(key, model, path, status, user, tags, error) become one row whose ``requests`` is their number,
so a flood of bad keys or a client hammering its limit adds a few rows per flush, not one per
request. What a client controls is bounded: the model, path, user and tags are cut at 256
characters, a 401 records neither user nor tags, and past ``MAX_GROUPS`` distinct groups in one
flush the rest are counted without their model, path, user and tags.
"""

from alloy.core import clean_path
from alloy.errors import AlloyError

MAX_GROUPS = 4096
MAX_TEXT = 256


def request_refused(ledger, request, error, key=None):
    """A request refused before a call existed: by authentication (no key known), or by routing
    (no route for its model or path: ``key`` is the one it authenticated with, if any)."""
    target = request.target
    mark = target.find(b"?")
    try:
        path = clean_path(target if mark < 0 else target[:mark]).decode("latin-1")[:MAX_TEXT]
    except AlloyError:
        path = None
    ledger.refused(
        (
            None if key is None else key.id, None if key is None else key.name, None if key is None else key.team,
            _model_of(request), path, error.status, None, None, error.code,
        )
    )  # fmt: skip


def call_refused(ledger, call, error, user, tags):
    """A routed call refused at admission: its key, the model asked, the body's ``user`` and the
    ``x-alloy-tags`` header (read by the caller, as for every ledger row)."""
    key = call.key
    scan = call.scan
    model = None if scan is None or scan.model is None else scan.model[:MAX_TEXT]
    ledger.refused(
        (
            None if key is None else key.id, None if key is None else key.name, None if key is None else key.team,
            model, call.path.decode("latin-1")[:MAX_TEXT], error.status, user, tags, error.code,
        )
    )  # fmt: skip


def _model_of(request):
    """The model a refused JSON body named, if it named one (its scan may refuse it: then none),
    whatever its Content-Type said (curl -d sends JSON as a form): this is a record, not a route."""
    from alloy.routing import json_model_scan

    try:
        scan = json_model_scan(request, json_only=True)
    except AlloyError:
        return None
    return None if scan is None else scan.model[:MAX_TEXT]


def rows(groups, at):
    """The ledger rows (in ``LEDGER_COLUMNS`` order) of one flush's refusal counts."""
    return [
        (at, key_id, key_name, team, model, None, None, path, status, 0, 0, 0, 0.0, None, user, tags, None, None, code, count)
        for (key_id, key_name, team, model, path, status, user, tags, code), count in groups.items()
    ]


def coarse(group):
    """The group past ``MAX_GROUPS``: what the client chose (model, path, user, tags) left out."""
    key_id, key_name, team, _, _, status, _, _, code = group
    return (key_id, key_name, team, None, None, status, None, None, code)
