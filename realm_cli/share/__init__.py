"""Sharing a run: export its model to a plain directory with a model card, push it to the hub."""
