"""The ``asterisk_calls`` processor: AMI, CEL (and CDR) events into Asterisk call legs.

One leg per Asterisk channel (node + uniqueid), grouped into calls by linkedid, with
transfers and pickups, hangup causes, dial status, bridged peers and the SIP Call-ID
that ties a channel to the SIP legs of ``call_legs``. :mod:`.correlator` is the pure
core (envelopes in, rows out, the caller owns the clock), :mod:`.ami` and :mod:`.cel`
read the two event vocabularies, :mod:`.rows` builds the stored rows, :mod:`.app` is
the bus/store shell. Tables: ``asterisk_legs``, ``asterisk_calls``,
``asterisk_transfers`` (schemas/migrations/0008) and ``call_links`` rows with via
``asterisk``. See docs/asterisk.md.
"""
