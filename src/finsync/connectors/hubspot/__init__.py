"""HubSpot as a CRM/CPQ source: signed webhooks, snapshots fetched with the official SDK."""
