"""``python -m sb3_worldmodels.train``: the RL Zoo's ``train`` with ``dcmpc`` and ``dreamer`` registered."""

from sb3_worldmodels.zoo import run_train

if __name__ == "__main__":
    run_train()
