"""Training reward models: the Bradley-Terry trainer (TRL RewardTrainer), fp32 master weights, the combiner."""
