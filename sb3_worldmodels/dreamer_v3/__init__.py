"""DreamerV3 (Hafner et al., arXiv 2301.04104v1): its distributions, losses and return normaliser (:mod:`.distributions`)."""
