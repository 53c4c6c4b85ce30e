"""Metrics and Lightning callbacks."""
