"""Scheduling policies, one per module; ``sagellm_core.scheduling.registry`` builds them."""
