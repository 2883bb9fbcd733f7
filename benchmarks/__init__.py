"""Datasets, metrics, the experiment runner, tracking and reports. Top of the data flow."""
