"""``python -m sagellm_router --config FILE``: the same as ``sagellm router``."""

from sagellm_router.cli import router

if __name__ == "__main__":
    router()
