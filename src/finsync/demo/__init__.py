"""The reference workflow (DESIGN §4) as a scripted year on the embedded systems, with the
faults of DESIGN §5 injected, and the report finance reads at the end.

`finsync demo` (cli/demo.py) parses its options, calls `run.run_demo` and renders what it
returns. The package drives the hub and the systems through the services `bootstrap`
builds; it sits between the entry points and `bootstrap` in the import layers.
"""
