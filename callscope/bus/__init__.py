"""The bus: one interface (:mod:`.base`), an in-process and a Kafka implementation."""

from callscope.bus.base import Bus, Consumer, Producer, Record, TopicPartition

__all__ = ["Bus", "Consumer", "Producer", "Record", "TopicPartition"]
