"""Splits that run as PyTorch stages: export, run, profile and measure pipeline splits."""
