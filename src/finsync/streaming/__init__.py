"""The NATS JetStream transport (`[transport] kind = "nats"`)."""
