"""Orchestration: observed state from the API → pure decisions → API calls and status."""
