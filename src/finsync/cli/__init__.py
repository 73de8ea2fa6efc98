"""Command line: parse -> command -> hub -> print (Rich, or one JSON object with --json)."""
