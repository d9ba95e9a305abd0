"""Model-based reinforcement learning algorithms for Stable-Baselines3."""

from sb3_worldmodels.common.buffers import SequenceReplayBuffer
from sb3_worldmodels.dcmpc import DCMPC
from sb3_worldmodels.dreamer import Dreamer
from sb3_worldmodels.dreamer_v3 import DreamerV3
from sb3_worldmodels.envs import register_envs

register_envs()

__version__ = "0.1.0"
__all__ = ["DCMPC", "Dreamer", "DreamerV3", "SequenceReplayBuffer", "__version__"]
