"""Tests of the mutation fuzzing engine (bench.fuzz): every target, crash and hang detection, determinism."""
