-- Raw tables: one per envelope kind, so every event is queryable before correlation.
--
-- Common envelope columns first (id, node, role, ts, received, key, body), then typed
-- columns for the kind's main queries. ReplacingMergeTree(received) ordered by a key
-- that ends in id: replays collapse by id at merge time and under FINAL; retried
-- batches are dropped at insert time by their deduplication token
-- (non_replicated_deduplication_window). Placeholders: see callscope/store/migrations.py.
--
-- Retention counts from when a row was stored (`inserted`), not from the event's own time:
-- a TTL on `ts` drops replayed or backfilled events older than the TTL within seconds of
-- their insert (seen with chDB: the TTL merge removes the whole part), silently.

CREATE TABLE IF NOT EXISTS {database}.sip_messages {on_cluster}
(
    id String,
    node LowCardinality(String),
    role LowCardinality(String),
    ts DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    received DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    key String,
    body String CODEC(ZSTD(1)),  -- the body JSON without `raw` (stored once, below)
    call_id String,
    is_request Bool,
    method LowCardinality(String),
    status UInt16,  -- 0 for requests
    reason String,
    cseq UInt32,
    from_user String,
    to_user String,
    from_tag String,
    to_tag String,
    src_ip LowCardinality(String),
    src_port UInt16,
    dst_ip LowCardinality(String),
    dst_port UInt16,
    transport LowCardinality(String),
    correlation_id String,
    capture_id UInt32,
    user_agent LowCardinality(String),
    raw String CODEC(ZSTD(1)),
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1)),  -- when stored: the TTL counts from here
    -- Lookups by number go to the correlated tables; only the cross-leg correlation id is indexed here
    -- (each skip index costs ~10% of insert throughput on this, the busiest table).
    INDEX idx_correlation_id correlation_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(received)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (call_id, ts, id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1, index_granularity = 1024;

CREATE TABLE IF NOT EXISTS {database}.rtcp {on_cluster}
(
    id String,
    node LowCardinality(String),
    role LowCardinality(String),
    ts DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    received DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    key String,
    body String CODEC(ZSTD(1)),
    correlation_id String,  -- the SIP Call-ID as rtpengine sends it
    src_ip LowCardinality(String),
    src_port UInt16,
    dst_ip LowCardinality(String),
    dst_port UInt16,
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1))  -- when stored: the TTL counts from here
)
ENGINE = ReplacingMergeTree(received)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (correlation_id, ts, id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS {database}.ami_events {on_cluster}
(
    id String,
    node LowCardinality(String),
    role LowCardinality(String),
    ts DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    received DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    key String,
    body String CODEC(ZSTD(1)),
    event LowCardinality(String),
    linkedid String,
    uniqueid String,
    channel String,
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1)),  -- when stored: the TTL counts from here
    INDEX idx_uniqueid uniqueid TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(received)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (linkedid, ts, id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS {database}.cdr {on_cluster}
(
    id String,
    node LowCardinality(String),
    role LowCardinality(String),
    ts DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    received DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    key String,
    body String CODEC(ZSTD(1)),
    uniqueid String,
    linkedid String,
    src String,
    dst String,
    disposition LowCardinality(String),
    duration UInt32,
    billsec UInt32,
    start String,  -- as the CDR wrote it (Asterisk local time); ts is the parsed instant
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1)),  -- when stored: the TTL counts from here
    INDEX idx_uniqueid uniqueid TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(received)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (linkedid, ts, id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS {database}.cel {on_cluster}
(
    id String,
    node LowCardinality(String),
    role LowCardinality(String),
    ts DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    received DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    key String,
    body String CODEC(ZSTD(1)),
    eventtype LowCardinality(String),
    uniqueid String,
    linkedid String,
    channame String,
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1)),  -- when stored: the TTL counts from here
    INDEX idx_uniqueid uniqueid TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(received)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (linkedid, ts, id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS {database}.queue_log {on_cluster}
(
    id String,
    node LowCardinality(String),
    role LowCardinality(String),
    ts DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    received DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    key String,
    body String CODEC(ZSTD(1)),
    callid String,
    queue LowCardinality(String),
    agent LowCardinality(String),
    event LowCardinality(String),
    data1 String,
    data2 String,
    data3 String,
    data4 String,
    data5 String,
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1))  -- when stored: the TTL counts from here
)
ENGINE = ReplacingMergeTree(received)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (callid, ts, id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS {database}.options_probes {on_cluster}
(
    id String,
    node LowCardinality(String),
    role LowCardinality(String),
    ts DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    received DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    key String,
    body String CODEC(ZSTD(1)),
    target LowCardinality(String),
    target_kind LowCardinality(String),
    transport LowCardinality(String),
    passive Bool,
    status UInt16,  -- 0 when no answer
    rtt_ms Nullable(Float64),  -- NULL when no answer
    error LowCardinality(String),
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1))  -- when stored: the TTL counts from here
)
ENGINE = ReplacingMergeTree(received)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (target, ts, id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS {database}.logs {on_cluster}
(
    id String,
    node LowCardinality(String),
    role LowCardinality(String),
    ts DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    received DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    key String,
    body String CODEC(ZSTD(1)),
    level LowCardinality(String),
    message String CODEC(ZSTD(1)),
    correlation_id String,
    call_id String,
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1)),  -- when stored: the TTL counts from here
    INDEX idx_correlation_id correlation_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(received)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (call_id, ts, id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1, index_granularity = 1024;
