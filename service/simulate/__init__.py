"""``tailor simulate``: a campaign's reach on a population before it goes live (offline, DuckDB)."""
