"""Errors raised by retrievers that a user can act on (the CLI prints them without a traceback)."""


class RetrieverError(RuntimeError):
    """A retriever cannot run as configured (e.g. a model that cannot be loaded offline)."""
