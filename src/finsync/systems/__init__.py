"""Embedded reference systems (billing, ledger, revrec, tax): each a pure rules core with
its own tables, reached only through its connector port. None imports another."""
