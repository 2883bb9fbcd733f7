"""Scoring: metrics at k, evidence spans, paired tests, TREC files. Pure functions over runs and qrels."""
