"""The AMI test server speaks the protocol: checked with a bare socket and callscope's framing."""

from __future__ import annotations

import asyncio

from collectors.ami.wire import AmiFramer, Banner, Block, Item, encode_block
from tests.ami.corpus import CACOFONISK, PANORAMISK
from tests.ami.server import AmiServer, load_recording
from tests.corpus import corpus_file


class _Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.framer = AmiFramer()
        self.items: list[Item] = []

    @classmethod
    async def connect(cls, server: AmiServer) -> _Client:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        return cls(reader, writer)

    async def action(self, **fields: str) -> None:
        self.writer.write(encode_block(fields))
        await self.writer.drain()

    async def until(self, done: str, within: float = 5.0) -> list[Item]:
        """Read until a block named ``done`` (or EOF); everything read so far."""
        async with asyncio.timeout(within):
            while not any(isinstance(i, Block) and i.name == done for i in self.items):
                data = await self.reader.read(65536)
                if not data:
                    self.items += self.framer.close()
                    break
                self.items += self.framer.feed(data)
        return self.items

    async def closed(self, within: float = 5.0) -> bool:
        async with asyncio.timeout(within):
            while data := await self.reader.read(65536):
                self.items += self.framer.feed(data)
        return True

    def close(self) -> None:
        self.writer.close()


async def test_banner_login_ping_and_lists() -> None:
    async with AmiServer(username="u", secret="s") as ami:
        client = await _Client.connect(ami)
        await client.action(Action="CoreShowChannels", ActionID="early")
        await client.action(action="login", username="u", secret="s", actionid="1")
        items = await client.until("FullyBooted")
        assert items[0] == Banner("Asterisk Call Manager/5.0.1", "5.0.1")
        refused, accepted = (i for i in items if isinstance(i, Block) and i.kind == "response")
        assert refused.fields["Message"] == "Permission denied"
        assert accepted.fields == {"Response": "Success", "ActionID": "1", "Message": "Authentication accepted"}
        await ami.send({"Event": "Newchannel", "Uniqueid": "a.1", "Linkedid": "a.1", "Channel": "PJSIP/1-1"})
        await ami.send({"Event": "Newchannel", "Uniqueid": "a.2", "Linkedid": "a.1", "Channel": "PJSIP/2-1"})
        await ami.send({"Event": "Hangup", "Uniqueid": "a.2", "Linkedid": "a.1", "Channel": "PJSIP/2-1"})
        assert list(ami.channels) == ["a.1"]
        await client.action(Action="Ping", ActionID="p")
        await client.action(Action="CoreShowChannels", ActionID="c")
        ami.queue_status = [{"Event": "QueueParams", "Queue": "sales", "Calls": "0"}]
        await client.action(Action="QueueStatus", ActionID="q")
        items = await client.until("QueueStatusComplete")
        blocks = [i for i in items if isinstance(i, Block)]
        pong = next(b for b in blocks if b.fields.get("ActionID") == "p")
        assert pong.fields["Ping"] == "Pong"
        listed = [b for b in blocks if b.fields.get("ActionID") == "c"]
        assert [b.name for b in listed] == ["Success", "CoreShowChannel", "CoreShowChannelsComplete"]
        assert listed[0].fields["EventList"] == "start"
        assert listed[1].fields["Uniqueid"] == "a.1"
        assert listed[1].fields["Linkedid"] == "a.1"
        assert listed[2].fields["ListItems"] == "1"
        queue = [b.name for b in blocks if b.fields.get("ActionID") == "q"]
        assert queue == ["Success", "QueueParams", "QueueStatusComplete"]
        await client.action(Action="Logoff", ActionID="bye")
        assert await client.closed()
        assert [b.name for b in client.items if isinstance(b, Block)][-1] == "Goodbye"
        assert ami.actions[1]["secret"] == "***"
        client.close()


async def test_wrong_secret_is_refused_and_closed() -> None:
    async with AmiServer(secret="right") as ami:
        client = await _Client.connect(ami)
        await client.action(Action="Login", Username=ami.username, Secret="wrong", ActionID="1")
        assert await client.closed()
        response = next(i for i in client.items if isinstance(i, Block))
        assert response.fields["Message"] == "Authentication failed"
        assert ami.failed_logins == 1
        client.close()


async def test_asterisk11_banner_lists_channels_the_old_way() -> None:
    async with AmiServer(banner="Asterisk Call Manager/1.3", crlf=False) as ami:
        client = await _Client.connect(ami)
        await client.action(Action="Login", Username=ami.username, Secret=ami.secret)
        await client.until("FullyBooted")
        await ami.send({"Event": "Newchannel", "Uniqueid": "1409169987.2", "Channel": "SIP/a-1", "Exten": "200"})
        await client.action(Action="CoreShowChannels", ActionID="c")
        items = await client.until("CoreShowChannelsComplete")
        chan = next(i for i in items if isinstance(i, Block) and i.name == "CoreShowChannel")
        assert chan.fields["UniqueID"] == "1409169987.2"
        assert chan.fields["Extension"] == "200"
        assert "Linkedid" not in chan.fields
        client.close()


async def test_silence_and_drop() -> None:
    async with AmiServer() as ami:
        client = await _Client.connect(ami)
        await client.action(Action="Login", Username=ami.username, Secret=ami.secret)
        await client.until("FullyBooted")
        ami.go_silent()
        await client.action(Action="Ping", ActionID="p")
        await ami.wait_action("Ping")  # read by the server, never answered
        await ami.send({"Event": "Newchannel", "Uniqueid": "x.1"})
        assert not ami.sessions[0].writer.is_closing()
        ami.drop()
        assert await client.closed()
        assert not any(isinstance(i, Block) and i.fields.get("ActionID") == "p" for i in client.items)
        assert not any(isinstance(i, Block) and i.name == "Newchannel" for i in client.items)
        client.close()


def test_recordings_load_in_both_forms() -> None:
    json_events = load_recording(corpus_file(f"{CACOFONISK}/simple/ab_a_cancel.json"))
    assert len(json_events) == 29
    assert all(isinstance(v, str) for e in json_events for v in e.values())
    assert "content" not in json_events[0]
    wire_events = load_recording(corpus_file(f"{PANORAMISK}/originate_with_events.yaml"))
    assert len(wire_events) == 748
    assert wire_events[0]["Event"] == "Newchannel"
