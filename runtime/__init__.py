"""Splits that run as PyTorch stages: export, run, profile and calibrate pipecert partitions."""
