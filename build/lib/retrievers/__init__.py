"""Queries -> ranked lists. Imports chunkers; never benchmarks."""
