from sb3_worldmodels.common.buffers import SequenceReplayBuffer, SequenceSamples

__all__ = ["SequenceReplayBuffer", "SequenceSamples"]
