"""Tests of the data layer (ingest)."""
