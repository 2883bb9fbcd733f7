"""MLflow: logging a run (``tracker``), reading runs back as typed records (``store``), provenance and group
choices."""
