from sb3_worldmodels.dcmpc.dcmpc import DCMPC
from sb3_worldmodels.dcmpc.fsq import FSQ
from sb3_worldmodels.dcmpc.planner import MPPIPlanner
from sb3_worldmodels.dcmpc.policies import DCMPCPolicy, MlpPolicy, MultiInputPolicy

__all__ = ["DCMPC", "FSQ", "MPPIPlanner", "DCMPCPolicy", "MlpPolicy", "MultiInputPolicy"]
