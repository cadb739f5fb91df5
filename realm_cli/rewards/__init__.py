"""Rewards: building a reward from a spec, reward-model loading and scoring, the NIM client and its cache,
safe scoring, the combiner, score I/O and the HTTP server."""
