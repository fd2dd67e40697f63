"""Apache Kafka bus through aiokafka.

Delivery guarantee of the producer: at-least-once. ``send`` puts the message in a
bounded in-process buffer (``buffer_max_messages``) and returns; a background task
packs the buffer into record batches per partition (Kafka's murmur2 key partitioner)
and hands them to an idempotent aiokafka producer (``acks=all``). A batch the broker
did not acknowledge goes back to the head of the buffer, the producer is rebuilt (a new
producer id, so stale sequence numbers cannot wedge it) and delivery resumes after a
capped exponential backoff: while Kafka is away the buffer fills (the
``callscope_bus_buffered_messages`` gauge shows it), then ``send`` waits and one warning
says so.
Nothing is dropped on purpose; messages still buffered when ``close`` is cancelled are
counted in ``callscope_events_dropped_total{component="bus.kafka"}``.

Order is kept per partition, except that a batch retried after a partial failure may
land after a later batch of the same partition that succeeded; consumers deduplicate
by envelope id anyway (DESIGN.md, Delivery).
"""

from callscope.bus.kafka.bus import KafkaBus
from callscope.bus.kafka.consumer import KafkaConsumer
from callscope.bus.kafka.producer import KafkaProducer

__all__ = ["KafkaBus", "KafkaConsumer", "KafkaProducer"]
