"""The embedded tax engine: jurisdictions, rates, exemptions, reverse charge, rounding."""
