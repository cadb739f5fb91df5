"""Evaluating: statistics, RewardBench and TruthfulQA scoring, continuation log-likelihoods, run reports."""
