"""``python -m sagellm_sim``: the same command as ``sagellm sim``."""

from sagellm_sim.cli import sim

if __name__ == "__main__":
    sim(prog_name="python -m sagellm_sim")
