"""The tax engine as a separate process: its HTTP API (`server`) and the client
(`client.HttpTax`) that plays the tax port over it, on one wire (`wire`)."""
