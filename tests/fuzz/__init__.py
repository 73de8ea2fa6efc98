"""The intake fuzz suite (issue 12): hostile and generated payloads against every intake
and webhook route, then what must still hold. Marked `fuzz`; part of the normal run."""
