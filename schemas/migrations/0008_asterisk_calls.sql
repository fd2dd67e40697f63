-- Asterisk call legs, calls and transfers, written by processors/asterisk_calls from AMI, CEL and CDR events.
-- Every change of a row's content inserts a new version: read with FINAL, or argMax(..., version).
-- version is monotonic per row (max(previous + 1, microseconds of updated_at)); id = key || '@' || version
-- (the BatchSink's deduplication token is built from it). Times are event times (UTC).
--
-- The SIP Call-ID tie is not here but in call_links: rows (sip_call_id, '', 'asterisk', 'linkedid@node')
-- written by the same processor, resolved by the trace like any shared link value.
--
-- created: when callscope first saw the channel/call (fixed: the partition key, so every version of a row
-- lands in the same partition); started_at is the channel's own start (Newchannel, CHAN_START), which a late
-- event can still move earlier. Retention counts from `inserted` (see 0001).

-- asterisk_legs: one row per channel on one node (leg_id = node/uniqueid).
-- linkedid: the call the channel is in now; linkedids: every linkedid it had, in order (a pickup or an
-- attended transfer moves a channel to another call). direction: 'in' (it called Asterisk) or 'out' (Asterisk
-- dialed it; the ';1' half of a Local pair). callee: the extension dialed (in), the party reached (out).
-- dialed_by: the uniqueid of the channel that dialed it; dial_status: DialEnd/Dial End DialStatus for it.
-- state: live, ringing, answered, then hungup, timeout (no Hangup within the processor's timeouts) or lost
-- (hung up while the AMI connection was down: ended_at is the reconnect, at the latest).
-- hangup_cause: the Q.850 code (NULL when none was seen); outcome: completed, busy, no-answer, rejected,
-- answered-elsewhere, cancelled, failed (docs/asterisk.md). bridged_with: channels it shared a bridge with;
-- connected_to: the non-Local channels it was connected to through bridges and Local pairs.
-- incomplete: the channel's start was not seen, or the AMI connection was lost while it was live.
-- shard_by: cityHash64(node, uniqueid)

CREATE TABLE IF NOT EXISTS {database}.asterisk_legs {on_cluster}
(
    id String,
    leg_id String,
    node LowCardinality(String),
    uniqueid String,
    linkedid String,
    linkedids Array(String),
    channel String,
    tech LowCardinality(String),
    direction LowCardinality(String),
    caller_num String,
    caller_name String,
    connected_num String,
    connected_name String,
    callee String,
    context String,
    exten String,
    dialed_by String,
    dial_string String,
    dial_status LowCardinality(String),
    forwarded_to String,
    started_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    ringing_at Nullable(DateTime64(6, 'UTC')),
    answered_at Nullable(DateTime64(6, 'UTC')),
    bridged_at Nullable(DateTime64(6, 'UTC')),
    ended_at Nullable(DateTime64(6, 'UTC')),
    duration_secs Nullable(Float64),
    bridged_secs Nullable(Float64),
    hangup_cause Nullable(UInt8),
    hangup_cause_text String,
    outcome LowCardinality(String),
    state LowCardinality(String),
    bridged_with Array(String),
    connected_to Array(String),
    sip_call_id String,
    incomplete Bool,
    sources Array(LowCardinality(String)),
    created DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    version UInt64,
    updated_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1)),  -- when stored: the TTL counts from here
    INDEX idx_linkedids linkedids TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_sip_call_id sip_call_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(created)
ORDER BY (uniqueid, node)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1, index_granularity = 1024;

-- asterisk_calls: one row per linkedid per node. caller_*: the party the call is for (the channel that
-- started it; the transferee after a transfer). answered_at: that channel answered; connected_at: two
-- non-Local channels first connected (a conversation). wait_secs: start -> connected; talk_secs:
-- connected -> end. state: live, ended, or merged (every channel moved to another linkedid: merged_into).
-- outcome (ended calls): the caller channel's outcome, or 'transferred' when it handed the call on.
-- transfers: the kinds of its transfers (blind, attended, blonde, pickup, masquerade, transfer).
-- checkpoint: the processor's in-flight state of the call (JSON, internal): lets a restarted processor
-- resume a live call. Not for queries.
-- shard_by: cityHash64(node, linkedid)

CREATE TABLE IF NOT EXISTS {database}.asterisk_calls {on_cluster}
(
    id String,
    node LowCardinality(String),
    linkedid String,
    caller_channel String,
    caller_num String,
    caller_name String,
    callee String,
    started_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    answered_at Nullable(DateTime64(6, 'UTC')),
    connected_at Nullable(DateTime64(6, 'UTC')),
    ended_at Nullable(DateTime64(6, 'UTC')),
    duration_secs Nullable(Float64),
    wait_secs Nullable(Float64),
    talk_secs Nullable(Float64),
    state LowCardinality(String),
    outcome LowCardinality(String),
    hangup_cause Nullable(UInt8),
    hangup_cause_text String,
    channels UInt16,
    uniqueids Array(String),
    transfers Array(LowCardinality(String)),
    sip_call_ids Array(String),
    merged_into String,
    incomplete Bool,
    created DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    version UInt64,
    updated_at DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    checkpoint String CODEC(ZSTD(1)),
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1)),  -- when stored: the TTL counts from here
    INDEX idx_sip_call_ids sip_call_ids TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_state state TYPE set(8) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(created)
ORDER BY (linkedid, node)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1, index_granularity = 1024;

-- asterisk_transfers: one row per transfer, pickup or masquerade; transfer_id = node|kind|the channel that
-- made it, so AMI and CEL reporting the same transfer give one row (id = transfer_id || '@' || version). linkedid: the call it happened in
-- (the transferee's); second_linkedid: the consultation call of an attended/blonde transfer.
-- kind: blind, attended, blonde (attended while the target still rang), pickup, masquerade (Asterisk 11),
-- transfer (old CEL TRANSFER). A later version may fill a field the first event lacked.
-- shard_by: cityHash64(linkedid)

CREATE TABLE IF NOT EXISTS {database}.asterisk_transfers {on_cluster}
(
    id String,
    transfer_id String,
    node LowCardinality(String),
    linkedid String,
    ts DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    kind LowCardinality(String),
    result LowCardinality(String),
    transferer_channel String,
    transferer_uniqueid String,
    transferee_channel String,
    transferee_uniqueid String,
    target_channel String,
    target_uniqueid String,
    target_exten String,
    second_linkedid String,
    is_external Bool,
    source LowCardinality(String),
    event_id String,
    version UInt64,
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1))  -- when stored: the TTL counts from here
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(ts)
ORDER BY (linkedid, transfer_id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1, index_granularity = 1024;
