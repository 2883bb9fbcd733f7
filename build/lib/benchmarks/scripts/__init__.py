"""One-off reference, speed and scale scripts (``python -m benchmarks.scripts.<name>``): they use the library
core in ``benchmarks/``, ``retrievers/`` and ``chunkers/``; nothing in the core imports them."""
