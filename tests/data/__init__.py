"""Tests of the data layer (pipeline/data)."""
