"""finsync: keeps a SaaS finance stack in sync."""
