"""Aligning policies against any reward: the shared job loop, sampling, policy loading, PPO, the round report."""
