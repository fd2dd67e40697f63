"""What every aiokafka client of the bus does to start."""

from __future__ import annotations

from typing import Protocol, TypeVar


class _Client(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


C = TypeVar("C", bound=_Client)


async def started(client: C) -> C:
    """``client`` once started; stopped again when starting fails (its background tasks and sockets go)."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise
    return client
