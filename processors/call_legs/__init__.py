"""The ``call_legs`` processor: SIP dialogs (Call-ID + from-tag) merged over every node into ``call_legs``.

:mod:`.correlator` is the pure core (envelopes in, rows out, the caller owns the
clock); :mod:`.app` is the bus/store shell. Links between legs (HEP correlation
id, correlation headers such as X-CID, Session-ID) go to ``call_links``.
"""
