"""Domain state of the fake: profiles, batches, tenants, the journal, rate limits."""
