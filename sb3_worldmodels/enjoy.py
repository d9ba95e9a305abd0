"""``python -m sb3_worldmodels.enjoy``: the RL Zoo's ``enjoy`` with ``dcmpc`` and ``dreamer`` registered."""

from sb3_worldmodels.zoo import run_enjoy

if __name__ == "__main__":
    run_enjoy()
