"""Evaluation: the paper's Table-1 metrics, defined once."""
