"""Why a query failed: the failure-mode verdicts (one ladder for runs and traces), the companion runs they
consult, trace reading, label-free signals and the audit report page."""
