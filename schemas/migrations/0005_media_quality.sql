-- media_quality: one row per RTCP report block (rtpengine's RTCP JSON on callscope.rtcp) and per
-- VQ-RTCPXR report (SIP PUBLISH, report_type 'VQ'), written by processors/media_quality.
-- Joined to the call by call_id (the Call-ID rtpengine sends as the HEP correlation id).
--
-- id: the event id || ':' || block index (stable: replays collapse). fraction_lost is 0..1 (RTCP's
-- 8-bit fixed point / 256). jitter_ms: interarrival jitter / clock_rate. rtt_ms: from LSR/DLSR when
-- computable. r_factor / mos: the simplified E-model of docs/mos.md (G.711, one-way delay
-- RTT/2 + jitter buffer). missing: the figures this report could not give ('rtt', 'jitter',
-- 'loss', 'mos'), so NULL is never mistaken for a perfect zero.
-- shard_by: cityHash64(call_id)

CREATE TABLE IF NOT EXISTS {database}.media_quality {on_cluster}
(
    id String,
    call_id String,
    correlation_id String,
    node LowCardinality(String),
    ts DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    src_ip String,
    src_port UInt16,
    dst_ip String,
    dst_port UInt16,
    ssrc UInt32,  -- the reporter
    source_ssrc UInt32,  -- the stream reported on
    report_type LowCardinality(String),  -- 'SR', 'RR', 'XR', 'VQ'
    packets_lost Int64,  -- cumulative, as reported (signed 24-bit in RTCP)
    fraction_lost Float32,  -- 0..1 since the previous report
    jitter_ms Nullable(Float32),
    rtt_ms Nullable(Float32),
    r_factor Nullable(Float32),
    mos Nullable(Float32),
    missing Array(String),
    clock_rate UInt32,
    codec LowCardinality(String),  -- the codec the clock rate was taken from ('' = default 8000)
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1)),  -- when stored: the TTL counts from here
    INDEX idx_correlation_id correlation_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (call_id, ts, id)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1, index_granularity = 1024;
