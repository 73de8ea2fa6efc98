"""CPQ sources: the Salesforce CPQ mapper (`salesforce`), finsync's own signed CPQ JSON
(`document`, `signature`) and the CSV / JSON-lines file drop (`filedrop`). Each turns what
a CPQ approved into `commercial_contract.approved` (and `customer.upserted`) drafts; the
hub orders them from billing (docs/cpq/sources.md)."""
