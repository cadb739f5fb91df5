"""Helpers shared by the tests: a fake NIM server, toy models for align, reward-model recipe writers, real data."""
