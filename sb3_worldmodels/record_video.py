"""``python -m sb3_worldmodels.record_video``: the RL Zoo's ``record_video`` with ``dcmpc`` and ``dreamer`` registered."""

from sb3_worldmodels.zoo import run_record_video

if __name__ == "__main__":
    run_record_video()
