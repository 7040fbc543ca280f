"""Governance: virtual keys, teams, rate limits, budgets and the spend ledger.

Where it plugs into the request path (``alloy.pipeline``):

    authenticate  ``Governance.authenticate(request)`` -> the key identity (None: the master key),
                  or raises ``AuthenticationFailed``; it checks the master key too
    admit         ``Governance.admit(call)`` refuses with an ``AlloyError`` (429...) before anything
                  goes upstream; lines it appends to ``call.id_line`` go on every answer of the call
    account       a finish listener it adds to ``pipeline.listeners`` reads ``call.usage``, the
                  status and the clock reads, and releases what ``admit`` reserved
    admin API     handlers it puts in ``pipeline.admin_routes`` (``/admin/keys``, ``/admin/usage``)

``governance_for`` returns None when nothing is configured and no key exists: the gateway then
behaves exactly as with the master key alone.
"""


def governance_for(config, pipeline):
    """The governance of this gateway, or None (the master key alone)."""
    return None
