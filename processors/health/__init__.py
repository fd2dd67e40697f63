"""The ``health`` processor: OPTIONS probe results (active and passive) into health states.

:mod:`.state` is the pure core (per (node, target) state machines and the aggregate per
target), :mod:`.passive` the pure passive OPTIONS correlator, :mod:`.app` the bus/store
shell, :mod:`.metrics` the Prometheus metrics. Transitions are stored in
``health_transitions`` (schemas/migrations/0007). See docs/health.md.
"""
