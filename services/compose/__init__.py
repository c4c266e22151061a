"""The composition root: the only place the ledger's parts are constructed and wired together.

core.py builds the decision core (packs, store, clock, ids → Handler); process.py one process from
its settings (`bootstrap` → `Ledger`, ledger.py); read_side.py and http.py what `ledger run` adds
(the read side, the HTTP API's dependencies, the server); ledger_run.py runs all of it in order.
"""
