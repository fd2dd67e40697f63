"""A real Apache Kafka broker for tests (see broker.py)."""
