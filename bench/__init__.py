"""Benchmarks: each module prints its own figures; ``python -m bench`` runs them all."""
