"""One experiment point: config validation, retrieval over a dataset, evaluation, logging (``runner``)."""
