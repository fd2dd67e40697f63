"""Fault tests (issue 7): each injects one fault into a running pipeline and proves at the end
that every generated event was stored exactly once (see :mod:`tests.faults.counts`)."""
