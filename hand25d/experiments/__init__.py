"""Experiments: the reproduction of the paper's Tables 1 and 2 (docs/results.md)."""
