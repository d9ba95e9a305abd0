"""``python -m sb3_worldmodels.load_from_hub``: the RL Zoo's ``load_from_hub`` with ``dcmpc`` and ``dreamer`` registered."""

from sb3_worldmodels.hub import main

if __name__ == "__main__":
    main()
