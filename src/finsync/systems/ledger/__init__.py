"""The embedded general ledger (the ERP role): legal entities, chart of accounts,
accounting periods, journal entries, posting rules, the AR subledger and FX."""
