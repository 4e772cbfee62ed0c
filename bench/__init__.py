"""Benchmarks: each module prints a table (machine, baseline, ratio); none asserts a time.

``python -m bench`` runs them all (``--quick`` for smaller sizes).
"""
