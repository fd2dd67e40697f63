-- health_transitions: the health processor's (processors/health) state changes, one row per change of
-- one vantage point's view of a target (scope 'node', node = the vantage point) and of the target's
-- aggregate over its vantage points (scope 'target', node ''). States: unknown, up, degraded, down;
-- the aggregate also partial (down from some vantage points, not all). A row with
-- from_state = to_state records a flapping change (set or cleared) without a state change.
--
-- at: when it happened, from event times (the probe result that caused it; for a stale pair the
-- last result's time + its stale time), so every process computes the same row. reason says why
-- ("3 consecutive timeouts", "rtt 812 ms > 500 ms", "down from sbc1 (1 of 2 vantage points)").
-- status, rtt_ms, error, passive: what the causing result said (0/NULL/''/false when time caused it).
-- id: a hash of scope, node, target, from_state, to_state, at and flapping: a replayed transition
-- has the same id and the same ORDER BY key, and collapses (ReplacingMergeTree, FINAL); a retried
-- batch is dropped by its insert deduplication token.
--
-- Current state of every (scope, node, target): its newest row (argMax(to_state, (at, id))).
-- shard_by: cityHash64(target)

CREATE TABLE IF NOT EXISTS {database}.health_transitions {on_cluster}
(
    id String,
    scope LowCardinality(String),  -- 'node' | 'target'
    node LowCardinality(String),  -- the vantage point; '' for scope 'target'
    target String,
    target_kind LowCardinality(String),  -- trunk, node, subscriber, other
    from_state LowCardinality(String),
    to_state LowCardinality(String),
    at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    reason String,
    status UInt16,  -- SIP code of the causing result; 0 when none
    rtt_ms Nullable(Float64),  -- NULL when no answer
    error LowCardinality(String),  -- '' when reachable or no result caused it
    passive Bool,
    flapping Bool,
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1))  -- when stored: the TTL counts from here
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (target, scope, node, at, id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1, index_granularity = 1024;
