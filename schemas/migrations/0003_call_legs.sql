-- call_legs: one row per SIP dialog (Call-ID + from-tag) merged over every node that saw it,
-- written by processors/call_legs. Every state change inserts a new version of the row
-- (live legs are visible while ringing/answered): read it with FINAL, or argMax(..., version).
--
-- leg_id = call_id || ':' || from_tag. version is monotonic per leg (max(previous + 1,
-- microseconds of the event that changed it)), so the newest state wins even when messages
-- arrive out of timestamp order. id = leg_id || '@' || version: the BatchSink's deduplication
-- token is built from it, and a replayed update collapses with the stored one.
--
-- state: 'live' (INVITE seen, no answer yet), 'ringing' (18x seen), 'answered' (2xx, no BYE yet),
-- then one of the final states 'completed' (BYE), 'failed' (3xx-6xx), 'cancelled' (CANCEL / 487),
-- 'timeout' (closed by the processor: no final answer within setup_timeout_secs, or answered and
-- never ended within answered_max_secs, ended_by = 'system').
-- status: final SIP code of the initial INVITE (0 while none). pdd_ms: INVITE -> first 18x, or
-- -> the final answer when there was no 18x. setup_ms: INVITE -> final. duration_secs: answer -> BYE.
--
-- checkpoint: the processor's in-flight state of the leg (JSON, internal): lets a restarted
-- processor resume a live leg from the table. Not for queries.
--
-- Partitioned by the start day; started_at is fixed when the leg is first seen, so every version of
-- a leg lands in the same partition. Retention counts from `inserted` (see 0001).
-- shard_by: cityHash64(call_id)

CREATE TABLE IF NOT EXISTS {database}.call_legs {on_cluster}
(
    id String,
    call_id String,
    leg_id String,
    from_tag String,
    to_tag String,  -- the answered (or last final) to-tag: the dialog's remote tag
    caller String,
    callee String,
    caller_display String,
    pai String,
    request_uri String,
    started_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    ringing_at Nullable(DateTime64(6, 'UTC')),
    answered_at Nullable(DateTime64(6, 'UTC')),
    ended_at Nullable(DateTime64(6, 'UTC')),
    pdd_ms Nullable(UInt32),
    setup_ms Nullable(UInt32),
    duration_secs Nullable(Float64),
    status UInt16,  -- 0 while no final answer
    reason String,
    reason_header String,
    ended_by LowCardinality(String),  -- 'caller', 'callee', 'system' or ''
    state LowCardinality(String),
    nodes Array(String),
    src_ip String,
    dst_ip String,
    user_agent String,
    codecs Array(String),
    correlation_ids Array(String),
    x_cid String,
    session_id String,
    message_count UInt32,
    retransmissions UInt32,
    reinvites UInt16,
    version UInt64,
    updated_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    checkpoint String CODEC(ZSTD(1)),
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1)),  -- when stored: the TTL counts from here
    INDEX idx_x_cid x_cid TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_state state TYPE set(16) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(started_at)
ORDER BY (call_id, leg_id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1, index_granularity = 1024;
