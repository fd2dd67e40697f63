"""The ``events`` processor: every envelope on the bus into its kind's raw table.

It is what makes every event queryable before any correlation, and it is where
envelopes from outside callscope (any Kafka producer) are validated: what fails
goes to ``callscope.deadletter`` and, from there, to the ``deadletters`` table.
"""
