"""One module per ``rbench-report`` study; each registers itself with :func:`benchmarks.studies.registry.register`."""
