"""The scenarios of ``sagellm bench``, one module each."""
