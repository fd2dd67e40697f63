-- call_links: legs of one call tied together by what the platform gives, resolved at query time.
-- Written by processors/call_legs, one row per direction (a -> b and b -> a), so a query by
-- call_id finds every link of a leg whichever side produced it:
--
--   SELECT linked_call_id, via, value FROM call_links FINAL WHERE call_id = {call_id:String}
--
-- via: 'hep_correlation_id' (HEP chunk 0x11 naming another Call-ID), 'header:<name>' (a configured
-- correlation header such as X-CID, value shared by both legs), 'session_id' (RFC 7989 Session-ID
-- shared by both legs), later 'asterisk' (linkedid). Links by a shared value are found in ClickHouse
-- by the value: a leg writes (call_id, '', via, value) "I carry this value" rows and pairs are
-- joined at query time, e.g.
--
--   SELECT b.call_id AS linked_call_id, a.via, a.value
--   FROM call_links AS a FINAL INNER JOIN call_links AS b FINAL ON a.via = b.via AND a.value = b.value
--   WHERE a.call_id = {call_id:String} AND b.call_id != a.call_id AND a.linked_call_id = ''
--
-- so two legs on different partitions never have to meet in one processor. A value that names
-- another Call-ID (the HEP correlation id, an X-CID header set to the first leg's Call-ID) is also
-- written as a pair of direct rows (a -> b and b -> a, linked_call_id set); header and Session-ID
-- values always get the "carries value" row as well, for platforms that put a shared token there.
-- id = call_id || '|' || linked_call_id || '|' || via || '|' || value (the BatchSink's token key).
-- shard_by: cityHash64(call_id)

CREATE TABLE IF NOT EXISTS {database}.call_links {on_cluster}
(
    id String,
    call_id String,
    linked_call_id String,  -- '' for a "carries value" row (see above)
    via LowCardinality(String),
    value String,
    ts DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),  -- the message that showed the link
    inserted DateTime DEFAULT now() CODEC(Delta, ZSTD(1)),  -- when stored: the TTL counts from here
    INDEX idx_value value TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (call_id, linked_call_id, via, value)
TTL inserted + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1, index_granularity = 1024;
