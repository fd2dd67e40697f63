"""queue_sessions: queue_log lines and AMI queue/agent events into queue sessions and agent states.

See docs/queues.md: the correlator (pure) is :mod:`processors.queue_sessions.correlator`, the
I/O shell :mod:`processors.queue_sessions.app`, the SLA queries :mod:`api.queue_sla`.
"""
