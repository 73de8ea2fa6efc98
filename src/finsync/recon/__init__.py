"""Reconciliation: billing, the ERP and the revenue engine compared, item by item."""
