"""The embedded subscription billing platform: a pure rules core (no database, no I/O).

Commands take a `BillingState` and return an `Outcome`: a new state plus the canonical events
the change would emit (`Emitted`). A bad command raises a `BillingError` and changes nothing.
The rules are written down in `docs/billing/rules.md` and at the top of each module.
"""
