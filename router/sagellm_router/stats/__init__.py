"""Load signals: scraped engine metrics and router-side request tracking."""
