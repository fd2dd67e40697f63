"""Constants shared by the Kafka bus, producer and consumer."""

COMPONENT = "bus.kafka"
ROUND_MAX_MESSAGES = 20_000  # messages packed per delivery round
MAX_MESSAGE_BYTES = 1_000_000  # below the broker's default message.max.bytes (1 MiB + 12)
TOPIC_ALREADY_EXISTS = 36
HEARTBEAT_INTERVAL_MS = 1000
# Keys whose partition the producer remembers (a call's messages share one); cleared when full.
# ~170 bytes each: 100,000 held 17 MiB of a collector's RSS under traffic of new calls.
PARTITION_CACHE_MAX_KEYS = 16_384
