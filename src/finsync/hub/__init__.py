"""The service layer: intake, de-duplication, sequencing, routing, outbox, delivery, replay."""
