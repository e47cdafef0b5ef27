"""Keyword scorers: each turns one encoder output into a score per keyword per window."""
