"""The ``registrations`` processor: REGISTER transactions (Call-ID + CSeq) into ``registrations``.

:mod:`.correlator` is the pure core, :mod:`.app` the bus/store shell. The current
state per AOR is the ``registrations_current`` view (schemas/migrations/0004).
"""
