"""The attack and failure suite."""

#: Lines the load test reports; printed in the suite's summary at the end of the run.
LOAD_RESULTS: list[str] = []
