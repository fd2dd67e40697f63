"""Bus tests: one contract suite for every implementation, plus the in-process bus on its own."""
