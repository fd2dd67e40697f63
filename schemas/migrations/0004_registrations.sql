-- registrations: one row per REGISTER transaction (Call-ID + CSeq), merged over every node that saw
-- it, written by processors/registrations. The request inserts a row with status 0; the final
-- answer inserts its new version (ReplacingMergeTree(version): read with FINAL).
--
-- id: the event id of the first copy of the REGISTER seen. aor: To URI user@host. expires: what the
-- 2xx granted (Contact ;expires= of the binding, else the Expires header), else what was requested;
-- 0 with a 2xx is a de-registration. challenge: a 401/407 answered this transaction (the
-- authenticated retry is the next CSeq on the same Call-ID: its own row).
-- requested_at is fixed at the first copy seen, so every version of a row keeps its ORDER BY key.
--
-- Current state per AOR: the view registrations_current (below), or the same query with filters.
-- shard_by: cityHash64(aor)

CREATE TABLE IF NOT EXISTS {database}.registrations {on_cluster}
(
    id String,
    aor String,
    contact String,
    expires UInt32,
    status UInt16,  -- final SIP code; 0 while none
    reason String,
    node LowCardinality(String),  -- the first node that saw the REGISTER
    nodes Array(String),  -- every node that saw the transaction, sorted
    user_agent String,
    src_ip String,
    call_id String,
    cseq UInt32,
    requested_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    answered_at Nullable(DateTime64(6, 'UTC')),
    challenge Bool,
    version UInt64,
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1)),  -- when stored: the TTL counts from here
    INDEX idx_call_id call_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(requested_at)
ORDER BY (aor, requested_at, id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

-- The current registration of each AOR: its last successful (2xx) REGISTER. expired is true after a
-- de-registration (expires = 0) or once registered_at + expires has passed (evaluated at query time).
-- last_attempt_* is the newest REGISTER of any outcome (a failing refresh shows there first).
-- One binding per AOR: several devices on one AOR show the newest one.
CREATE VIEW IF NOT EXISTS {database}.registrations_current {on_cluster} AS
SELECT
    aor,
    argMaxIf(contact, requested_at, ok) AS contact,
    argMaxIf(expires, requested_at, ok) AS expires,
    argMaxIf(assumeNotNull(answered_at), requested_at, ok) AS registered_at,
    registered_at + toIntervalSecond(expires) AS expires_at,
    toBool(expires = 0 OR expires_at <= now64(6)) AS expired,
    argMaxIf(node, requested_at, ok) AS node,
    argMaxIf(user_agent, requested_at, ok) AS user_agent,
    argMaxIf(src_ip, requested_at, ok) AS src_ip,
    argMaxIf(call_id, requested_at, ok) AS call_id,
    max(requested_at) AS last_attempt_at,
    argMax(status, requested_at) AS last_attempt_status
FROM
(
    SELECT *, status >= 200 AND status < 300 AND answered_at IS NOT NULL AS ok
    FROM {database}.registrations FINAL
)
GROUP BY aor
HAVING countIf(ok) > 0;
