"""AMI collector: Asterisk Manager Interface events from every Asterisk node, through panoramisk.

- :mod:`.config` the ``collectors.ami`` options (one connection per node);
- :mod:`.wire` the pure AMI wire framing (bytes in, blocks out, resynchronises after garbage);
- :mod:`.dialect` Asterisk 11 / 13+ recognition and the channel ids an event is keyed by;
- :mod:`.events` AMI event -> envelope, gap markers, resync marks (pure);
- :mod:`.client` panoramisk's Manager and protocol, fitted with callscope's framing;
- :mod:`.session` one node's connection: login, resync, keep-alive with a deadline, backoff
  (:mod:`.backoff`);
- :mod:`.publish` one node's events into the outbox: filter, ids, dialect, dead letters;
- :mod:`.metrics` the collector's own Prometheus metrics;
- :mod:`.collector` the I/O shell: sessions, publishing, metrics;
- :mod:`.replay` the ``ami`` replay format (wire transcripts and JSON lists of events).
"""
