"""The tamper-evident audit trail: who did what to which object, why, and when."""
