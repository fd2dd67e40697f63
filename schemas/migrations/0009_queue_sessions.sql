-- queue_sessions: one row per caller's stay in one queue (processors/queue_sessions), from queue_log
-- lines and AMI Queue*/Agent* events, merged when both report the same stay (docs/queues.md).
-- Every change writes a new version of the row (ReplacingMergeTree(version)): read it with FINAL.
--
-- session_id = node || '/' || queue || '/' || callid (|| '/' || n for the n-th re-entry of the same
-- channel into the same queue). id = session_id || '@' || version (the BatchSink's token key).
-- entered_at is fixed when the session's first row is written, so every version keeps its ORDER BY
-- key and its partition.
--
-- state: 'waiting' (in the queue), 'talking' (answered, not ended), 'ended'. outcome ('' while not
-- ended): answered ones 'completed_caller', 'completed_agent', 'transferred', 'answered_lost' (no end
-- seen within answered_max_secs); unanswered ones 'abandoned', 'timeout', 'exit_empty', 'exit_key',
-- 'exit' (AMI said the caller left, no queue_log says why), 'lost' (no end seen within
-- max_wait_secs); never offered to agents: 'full', 'join_empty', 'join_unavail', 'closed'.
-- wait_secs: Asterisk's own hold/wait time when it reported one, else from the timestamps; NULL
-- while waiting. talk_secs: Asterisk's talk time, else answered_at -> ended_at; NULL until ended
-- (and for 'answered_lost': nobody knows how long it lasted).
--
-- final: the session ended and settled (no late event from the other source within settle_secs);
-- exactly one final row per session is written (the processor checks the table before writing it),
-- and only final rows feed the rollup queue_sla_15m below.
-- checkpoint: the processor's in-flight state (JSON, internal), so a restarted processor resumes.
-- shard_by: cityHash64(session_id)

CREATE TABLE IF NOT EXISTS {database}.queue_sessions {on_cluster}
(
    id String,
    session_id String,
    node LowCardinality(String),
    queue LowCardinality(String),
    callid String,  -- the caller channel's uniqueid (queue_log callid, AMI Uniqueid)
    linkedid String,  -- from AMI when present
    caller String,
    entered_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    answered_at Nullable(DateTime64(6, 'UTC')),
    ended_at Nullable(DateTime64(6, 'UTC')),
    wait_secs Nullable(Float64),
    talk_secs Nullable(Float64),
    ring_attempts UInt16,  -- agents rung: unanswered rings (RINGNOANSWER, RINGCANCELED) + the answered one
    ring_secs Float64,  -- time spent ringing agents
    agent LowCardinality(String),  -- the member that answered
    agent_uniqueid String,  -- the answering agent channel's uniqueid (queue_log CONNECT data2)
    position Nullable(UInt16),  -- position when leaving the queue
    original_position Nullable(UInt16),  -- position when entering it
    state LowCardinality(String),
    outcome LowCardinality(String),
    answered Bool,
    transfer_target String,  -- exten@context (TRANSFER, BLINDTRANSFER) or method:data (ATTENDEDTRANSFER)
    exit_key String,  -- EXITWITHKEY's key
    sources Array(LowCardinality(String)),  -- 'ami', 'queue_log'
    gap Bool,  -- an AMI gap (reconnect) overlapped the session: events may be missing
    final Bool,
    version UInt64,
    updated_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    checkpoint String CODEC(ZSTD(1)),
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1)),  -- when stored: the TTL counts from here
    INDEX idx_callid callid TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_linkedid linkedid TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_session_id session_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_updated_at updated_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(entered_at)
ORDER BY (queue, entered_at, session_id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

-- queue_sla_15m: per queue and 15-minute interval (by entered_at, UTC), the figures of the sessions
-- whose final row was written: counts per outcome class, sums and the longest wait, and two
-- histograms that make every integer threshold exact: answered sessions by ceil(wait_secs)
-- (wait <= N  <=>  ceil(wait) <= N) and abandoned ones by floor(wait_secs) (wait < N  <=>
-- floor(wait) < N), capped at 3601 (any threshold up to 3600 s). Read it with sum()/max()/sumMap()
-- grouped by queue and interval (rows of one interval are merged in the background).
-- shard_by: cityHash64(queue)

CREATE TABLE IF NOT EXISTS {database}.queue_sla_15m {on_cluster}
(
    queue LowCardinality(String),
    interval_start DateTime('UTC'),
    offered SimpleAggregateFunction(sum, UInt64),
    answered SimpleAggregateFunction(sum, UInt64),
    abandoned SimpleAggregateFunction(sum, UInt64),
    timed_out SimpleAggregateFunction(sum, UInt64),
    exit_empty SimpleAggregateFunction(sum, UInt64),
    exit_key SimpleAggregateFunction(sum, UInt64),
    other_unanswered SimpleAggregateFunction(sum, UInt64),
    rejected SimpleAggregateFunction(sum, UInt64),
    wait_answered_sum SimpleAggregateFunction(sum, Float64),
    talk_sum SimpleAggregateFunction(sum, Float64),
    talked SimpleAggregateFunction(sum, UInt64),  -- answered sessions whose talk time is known
    wait_max SimpleAggregateFunction(max, Float64),
    answered_wait_hist SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(UInt64))),
    abandoned_wait_hist SimpleAggregateFunction(sumMap, Tuple(Array(UInt16), Array(UInt64))),
    -- when last stored: the TTL counts from here (an aggregate, so merged rows keep the newest)
    inserted SimpleAggregateFunction(max, DateTime) DEFAULT now()
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(interval_start)
ORDER BY (queue, interval_start)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.queue_sla_15m_mv {on_cluster}
TO {database}.queue_sla_15m{local} AS
SELECT
    queue,
    toStartOfFifteenMinutes(entered_at) AS interval_start,
    countIf(NOT is_rejected) AS offered,
    countIf(is_answered) AS answered,
    countIf(o = 'abandoned') AS abandoned,
    countIf(o = 'timeout') AS timed_out,
    countIf(o = 'exit_empty') AS exit_empty,
    countIf(o = 'exit_key') AS exit_key,
    countIf(NOT is_answered AND NOT is_rejected AND o NOT IN ('abandoned', 'timeout', 'exit_empty', 'exit_key'))
        AS other_unanswered,
    countIf(is_rejected) AS rejected,
    sumIf(wait, is_answered) AS wait_answered_sum,
    sumIf(talk, is_answered) AS talk_sum,
    countIf(is_answered AND has_talk) AS talked,
    maxIf(wait, NOT is_rejected) AS wait_max,
    sumMap(
        if(is_answered, [toUInt16(least(ceil(wait), 3601))], CAST([], 'Array(UInt16)')),
        if(is_answered, [toUInt64(1)], CAST([], 'Array(UInt64)'))
    ) AS answered_wait_hist,
    sumMap(
        if(o = 'abandoned', [toUInt16(least(floor(wait), 3601))], CAST([], 'Array(UInt16)')),
        if(o = 'abandoned', [toUInt64(1)], CAST([], 'Array(UInt64)'))
    ) AS abandoned_wait_hist
FROM
(
    -- distinct names: an alias of the outer SELECT (answered, abandoned ...) would shadow a column
    SELECT
        queue,
        entered_at,
        outcome AS o,
        answered AS is_answered,
        outcome IN ('full', 'join_empty', 'join_unavail', 'closed') AS is_rejected,
        ifNull(wait_secs, 0) AS wait,
        ifNull(talk_secs, 0) AS talk,
        talk_secs IS NOT NULL AS has_talk
    FROM {database}.queue_sessions{local}
    WHERE final
)
GROUP BY queue, interval_start;

-- agent_states: intervals of an agent's state, from queue_log (ADDMEMBER, REMOVEMEMBER, PAUSE,
-- UNPAUSE, PAUSEALL, UNPAUSEALL, AGENTLOGIN, AGENTLOGOFF, AGENTCALLBACKLOGIN, AGENTCALLBACKLOGOFF)
-- and AMI (QueueMemberAdded/Removed/Pause(d), AgentLogin/Logoff, QueueMember from a resync):
-- state 'logged_in' (queue ''), 'member' (of queue), 'paused' (in queue; reason = the pause reason).
-- A row is written when an interval opens (ended_at NULL) and again when it closes.
-- id = node || '/' || agent || '/' || queue || '/' || state || '/' || microseconds of started_at.
-- shard_by: cityHash64(agent)

CREATE TABLE IF NOT EXISTS {database}.agent_states {on_cluster}
(
    id String,
    node LowCardinality(String),
    agent String,  -- the member name as queue_log writes it (e.g. 'Agent/1001', 'PJSIP/1001', 'Alice')
    queue LowCardinality(String),  -- '' for logged_in
    state LowCardinality(String),
    reason String,
    interface String,  -- the member's interface / agent channel when known
    started_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    ended_at Nullable(DateTime64(6, 'UTC')),
    duration_secs Nullable(Float64),
    end_reason String,
    source LowCardinality(String),  -- which source opened it: 'queue_log', 'ami'
    version UInt64,
    updated_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1))  -- when stored: the TTL counts from here
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(started_at)
ORDER BY (agent, queue, state, started_at, id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
