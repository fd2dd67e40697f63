"""The store: ClickHouse, embedded (chDB, ``chdb://DIR``) or a server/cluster (``http(s)://``).

- :class:`Store` (client.py): connection, database, pinned synchronous insert settings;
- :class:`DirLock` (lock.py): one process per embedded data directory;
- :func:`apply_migrations` (migrations.py): numbered SQL files, applied once, checksummed;
- :func:`render_cluster_ddl` (cluster.py): the ON CLUSTER / Replicated / Distributed variant;
- :class:`BatchSink` (sink.py): bounded, retried, deduplicated insert batches (at-least-once).

The envelope -> row mapping is in :mod:`schemas.tables`.
"""

from callscope.store.client import Store
from callscope.store.cluster import render_cluster_ddl
from callscope.store.lock import DirLock
from callscope.store.migrations import apply_migrations, render_ddl
from callscope.store.sink import BatchSink, FaultInjector, SinkStoppedError

__all__ = [
    "BatchSink",
    "DirLock",
    "FaultInjector",
    "SinkStoppedError",
    "Store",
    "apply_migrations",
    "render_cluster_ddl",
    "render_ddl",
]
