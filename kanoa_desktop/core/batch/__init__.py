"""Batch runs: one question over many files, resumable."""
