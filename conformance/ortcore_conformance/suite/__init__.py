"""The conformance suite's test modules (run through the ortcore-conformance plugin)."""
