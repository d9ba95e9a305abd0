"""DreamerV3 (Hafner et al., *Mastering Diverse Domains through World Models*, arXiv 2301.04104v1)."""

from sb3_worldmodels.dreamer_v3.dreamer_v3 import DreamerV3
from sb3_worldmodels.dreamer_v3.policies import CnnPolicy, DreamerV3Policy, MlpPolicy, MultiInputPolicy

__all__ = ["CnnPolicy", "DreamerV3", "DreamerV3Policy", "MlpPolicy", "MultiInputPolicy"]
