"""Infrastructure every layer above uses and that is not retrieval: errors a user can act on, secret redaction,
whole-or-nothing writes, progress bars, the hub's offline rule, fingerprints and the optional-module check.
It imports nothing else of the project (the architecture test holds it to that)."""
