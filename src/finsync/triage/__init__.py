"""The exception queue finance works from: actions, approvals and their audit trail."""
