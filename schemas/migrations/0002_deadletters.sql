-- What could not be parsed: the reason and the raw bytes, so nothing is dropped silently.
-- id is a hash of the record (schemas.tables.deadletter_row), so a replayed dead letter collapses.
-- shard_by: cityHash64(id)

CREATE TABLE IF NOT EXISTS {database}.deadletters {on_cluster}
(
    id String,
    component LowCardinality(String),
    reason LowCardinality(String),
    detail String CODEC(ZSTD(1)),
    node LowCardinality(String),
    source_topic LowCardinality(String),
    received DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    raw String CODEC(ZSTD(1)),
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1))  -- when stored: the TTL counts from here
)
ENGINE = ReplacingMergeTree(received)
PARTITION BY toYYYYMMDD(received)
ORDER BY (component, received, id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
