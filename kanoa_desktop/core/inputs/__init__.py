"""Figures and tables: decoding and preparing what the user gives the model."""
