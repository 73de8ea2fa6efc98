"""Finance's read models: what the console (through the JSON API) and the CLI show, each
computed once here from the services that own the figures."""
