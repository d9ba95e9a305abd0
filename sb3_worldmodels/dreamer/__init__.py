from sb3_worldmodels.dreamer.dreamer import Dreamer
from sb3_worldmodels.dreamer.policies import CnnPolicy, DreamerPolicy, MlpPolicy, MultiInputPolicy
from sb3_worldmodels.dreamer.rssm import RSSM, RSSMState

__all__ = ["Dreamer", "DreamerPolicy", "MlpPolicy", "CnnPolicy", "MultiInputPolicy", "RSSM", "RSSMState"]
