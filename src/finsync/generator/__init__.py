"""A company generator: a plan of a company's business from a seed (`plan`), executed on
the embedded billing platform with its events delivered through the hub (`driver`)."""
