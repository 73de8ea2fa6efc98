"""HTTP API: parse -> command -> hub -> serialise."""
