"""Stripe as a billing and payments source: signed webhooks, catch-up polling of
`/v1/events`, fetch-on-event, and the mapping of Stripe objects to canonical events."""
