"""Mutation fuzzing of every parser that reads bytes from the network or from files.

One engine, many targets. Each target is a function from bytes to nothing that runs one
input through a parser the way its collector does, plus the exception types its contract
allows (``schemas.errors.DecodeError`` and its children, or nothing at all for the paths
that turn every bad input into a dead letter). Anything else escaping, or an input that
takes longer than the per-input time limit, is a crash.

Targets: ``hep`` (HEPv1/v2/v3 decode, auth check, envelope, TCP framing: the HEP
collector's per-packet path), ``sip`` (the SIP parser alone), ``ami`` (wire framing in two
splits, event envelopes, JSON recordings), ``queue_log``, ``cdr`` and ``cel`` (the file
collectors' batch path and single-line parse), ``options`` (OPTIONS answer parse and
stream framing) and ``pcap`` (pcap/pcapng reading for replay).

Inputs: structure-aware generators build valid messages from random fields; mutators then
flip bits, insert and delete bytes, lie in length fields, truncate, splice seeds, put in
huge numbers and odd Unicode. Seeds: samples built in here, plus the public corpus in
``../shared/corpus`` when it is present (read in place).

Deterministic for a seed: input ``i`` of target ``t`` depends only on (seed, t, i), not on
the number of workers. Usage::

    python -m bench.fuzz --inputs 1000000 --workers 2 --seed 1 [--crash-dir D] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import multiprocessing
import os
import random
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from callscope.settings import NodeConfig, TopologyConfig
from collectors.ami.dialect import DialectTracker
from collectors.ami.events import envelope_from_fields
from collectors.ami.replay import load_events
from collectors.ami.wire import AmiFramer, Block, encode_block
from collectors.cdr.parse import CdrParser
from collectors.cel.config import DEFAULT_COLUMNS as CEL_COLUMNS
from collectors.cel.parse import CelParser
from collectors.hep.config import HepConfig
from collectors.hep.decode import HepPacket, decode, encode_hep3, frame_stream
from collectors.hep.events import envelope_from_hep
from collectors.hep.pcap import PcapError, PcapReader
from collectors.hep.sip import SipError
from collectors.hep.sip import parse as sip_parse
from collectors.options.message import AnswerError, read_answer
from collectors.options.message import frame as options_frame
from collectors.queue_log.parse import QueueLogParser
from collectors.tail.translate import EnvelopeMaker, LineParser, translate
from schemas.errors import DecodeError

__all__ = ["TARGETS", "Target", "hep_packet_path", "main", "mutate", "run", "run_target"]

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
DEFAULT_CRASH_DIR = Path(__file__).resolve().parent / "fuzz-crashes"
CHUNK = 2000  # inputs per task handed to a worker
SAVE_PER_SIGNATURE = 3  # crashing inputs saved per distinct (target, exception, place)
MAX_SEED_BYTES = 32 * 1024


class Hang(BaseException):
    """Raised by the alarm when one input runs past the time limit (BaseException: no parser catches it)."""


# ---------------------------------------------------------------------------------------- samples
def _crlf(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


SDP = (
    "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)
VQ = (
    "VQSessionReport: CallTerm\r\nCallID: a84b4c76e66710@pc33\r\nLocalID: <sip:alice@a.example>\r\n"
    "RemoteID: <sip:bob@b.example>\r\nLocalAddr: IP=10.0.0.1 PORT=4000 SSRC=0x2468abcd\r\n"
    "LocalMetrics:\r\nTimestamps: START=2024-01-01T10:00:00Z STOP=2024-01-01T10:01:00Z\r\n"
    "PacketLoss: NLR=5.0 JDR=2.0\r\nQualityEst: RLQ=90 MOSLQ=4.1 MOSCQ=4.0\r\n"
)
SIP_SAMPLES: list[bytes] = [
    _crlf(
        "INVITE sip:bob@b.example.com SIP/2.0",
        "Via: SIP/2.0/UDP pc33.a.example.com:5060;branch=z9hG4bK776asdhds;rport",
        "Max-Forwards: 70",
        'From: "Alice" <sip:alice@a.example.com>;tag=1928301774',
        "To: <sip:bob@b.example.com>",
        "Call-ID: a84b4c76e66710@pc33.a.example.com",
        "CSeq: 314159 INVITE",
        "Contact: <sip:alice@pc33.a.example.com>",
        "Content-Type: application/sdp",
        f"Content-Length: {len(SDP)}",
        "",
    )
    + SDP.encode(),
    _crlf(
        "SIP/2.0 180 Ringing",
        "Via: SIP/2.0/UDP pc33.a.example.com;branch=z9hG4bK776asdhds;received=10.0.0.1",
        "From: Alice <sip:alice@a.example.com>;tag=1928301774",
        "To: <sip:bob@b.example.com>;tag=a6c85cf",
        "Call-ID: a84b4c76e66710@pc33.a.example.com",
        "CSeq: 314159 INVITE",
        "Content-Length: 0",
        "",
    ),
    _crlf(
        "BYE sip:alice@pc33.a.example.com SIP/2.0",
        "v: SIP/2.0/TCP 10.0.0.2:5060;branch=z9hG4bKnashds7",
        "f: <sip:bob@b.example.com>;tag=a6c85cf",
        "t: sip:alice@a.example.com;tag=1928301774",
        "i: a84b4c76e66710@pc33.a.example.com",
        "CSeq: 231 BYE",
        'Reason: Q.850;cause=16;text="Normal call clearing"',
        "l: 0",
        "",
    ),
    _crlf(
        "REGISTER sip:registrar.b.example.com SIP/2.0",
        "Via: SIP/2.0/UDP 10.0.0.3:5060;branch=z9hG4bKnashds8",
        "From: <sip:bob@b.example.com>;tag=456248",
        "To: <sip:bob@b.example.com>",
        "Call-ID: 843817637684230@998sdasdh09",
        "CSeq: 1826 REGISTER",
        "Contact: <sip:bob@10.0.0.3>;expires=7200",
        "Content-Length: 0",
        "",
    ),
    _crlf(
        "PUBLISH sip:collector@10.0.0.9 SIP/2.0",
        "Via: SIP/2.0/UDP 10.0.0.3:5060;branch=z9hG4bKvq1",
        "From: <sip:phone@10.0.0.3>;tag=9",
        "To: <sip:collector@10.0.0.9>",
        "Call-ID: vq-1@10.0.0.3",
        "CSeq: 1 PUBLISH",
        "Event: vq-rtcpxr",
        "Content-Type: application/vq-rtcpxr",
        f"Content-Length: {len(VQ)}",
        "",
    )
    + VQ.encode(),
]
OPTIONS_SAMPLES: list[bytes] = [
    _crlf(
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK-0123456789abcdef;rport=5070;received=10.0.0.9",
        "From: <sip:callscope@10.0.0.9>;tag=abcdef",
        "To: <sip:pbx@10.0.0.1>;tag=as1",
        "Call-ID: 0123456789abcdef@callscope",
        "CSeq: 7 OPTIONS",
        "Server: Asterisk PBX 18.0",
        "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE",
        "Content-Length: 0",
        "",
    ),
    _crlf(
        "SIP/2.0 404 Not Found",
        "Via: SIP/2.0/TCP [2001:db8::9]:5070;branch=z9hG4bK-f00",
        "From: <sip:callscope@[2001:db8::9]>;tag=1",
        "To: <sip:x@[2001:db8::1]>;tag=2",
        "Call-ID: f00@callscope",
        "CSeq: 1 OPTIONS",
        "User-Agent: kamailio",
        "Content-Length: 0",
        "",
    ),
]
RTCP_JSON = (
    b'{"type":200,"ssrc":1,"report_count":1,"sender_information":{"ntp_timestamp_sec":1,"packets":10,"octets":100},'
    b'"report_blocks":[{"source_ssrc":2,"fraction_lost":0,"packets_lost":0,"highest_seq_no":5,"ia_jitter":3,'
    b'"lsr":0,"dlsr":0}]}'
)
AMI_SAMPLES: list[bytes] = [
    b"Asterisk Call Manager/7.0.3\r\n"
    + encode_block({"Response": "Success", "ActionID": "1", "Message": "Authentication accepted"})
    + encode_block(
        {
            "Event": "Newchannel",
            "Privilege": "call,all",
            "Channel": "PJSIP/100-00000001",
            "ChannelState": "0",
            "CallerIDNum": "100",
            "Uniqueid": "1529939196.518",
            "Linkedid": "1529939196.518",
            "Timestamp": "1529939196.123456",
        }
    )
    + encode_block({"Event": "Hangup", "Uniqueid": "1529939196.518", "Cause": "16", "Cause-txt": "Normal"}),
    b"Response: Follows\nPrivilege: Command\nActionID: 2\ncore show version\nAsterisk 11.7\n--END COMMAND--\n\n"
    b"[218 bytes missing in capture file]Event: Newexten\nChannel: SIP/a-1\nUniqueID: 1.1\nVariable: a=1\n"
    b"Variable: b=2\n\n",
    encode_block({"Event": "QueueCallerAbandon", "Queue": "sales", "HoldTime": "12", "Uniqueid": "2.1"}, crlf=False)
    + encode_block({"Action": "Ping", "ActionID": "3"}),
]
AMI_JSON_SAMPLES: list[bytes] = [
    b'[{"Event":"FullyBooted","Privilege":"system,all","content":""},'
    b'{"Event":"Newchannel","Channel":"SIP/a-1","Uniqueid":"1.1","Linkedid":"1.1","content":""},'
    b'{"Event":"Hangup","Uniqueid":"1.1","Cause":16,"content":""}]'
]
QUEUE_LOG_SAMPLES: list[bytes] = [
    b"1366720340|1366720340.303267|MYQUEUE|SIP/8007|RINGNOANSWER|1000\n"
    b"1366720340|1366720340.303267|MYQUEUE|NONE|ENTERQUEUE||8001|1\n"
    b"1366720350|1366720340.303267|MYQUEUE|SIP/8007|CONNECT|10|1366720340.303268|3\n"
    b"1366720400|1366720340.303267|MYQUEUE|SIP/8007|COMPLETECALLER|10|50|1\n"
    b"1366720401|NONE|NONE|NONE|QUEUESTART|\n",
    b" time                       | callid       | queuename | agent    | event  | data1 | data2 | data3\n"
    b"----------------------------+--------------+-----------+----------+--------+-------+-------+------\n"
    b" 2012-07-03 16:02:44.125 | 1341345760.0 | q1        | Agent/1  | CONNECT | 4    | 1.1   | 2\n"
    b"(1 row)\n",
]
CDR_SAMPLES: list[bytes] = [
    b'"","100","200","default","""Test User"" <100>","SIP/100-1","SIP/200-2","Dial","SIP/200,30",'
    b'"2024-01-02 03:04:05","2024-01-02 03:04:07","2024-01-02 03:04:17",12,10,"ANSWERED","DOCUMENTATION",'
    b'"1700000000.1",""\n'
    b'"acc","100","*97","default","100","SIP/100-3","","VoiceMailMain","","2024-01-02 03:05:05",,'
    b'"2024-01-02 03:05:06",1,0,"NO ANSWER","DOCUMENTATION","1700000000.2","","","1700000000.2",7\n',
]
CEL_SAMPLES: list[bytes] = [
    b'"CHAN_START","1335310195.513823","","1000","","","","s","default","TinCan/string","","","3","",'
    b'"1335310195.0","1335310195.0","","","",""\n'
    b'"HANGUP","1335310212.847062","","1000","","","","s","default","TinCan/string","Playback","tt-monkeys",'
    b'"3","","1335310195.0","1335310195.0","","","","{""hangupcause"":16,""dialstatus"":""ANSWER""}"\n',
]


# ---------------------------------------------------------------------------------------- builders
def _ip_bytes(rng: random.Random, v6: bool) -> bytes:
    return rng.randbytes(16) if v6 else bytes([10, rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)])


def _hep3(rng: random.Random, payload: bytes, ptype: int) -> bytes:
    v6 = rng.random() < 0.25
    import ipaddress

    src = str(ipaddress.ip_address(_ip_bytes(rng, v6)))
    dst = str(ipaddress.ip_address(_ip_bytes(rng, v6)))
    pkt = HepPacket(
        3,
        10 if v6 else 2,
        rng.choice([17, 6, 132, 17, 17, 0, 255]),
        src,
        rng.randrange(65536),
        dst,
        rng.randrange(65536),
        rng.choice([0, 1_700_000_000, rng.randrange(2**32)]),
        rng.randrange(1_000_000) if rng.random() < 0.95 else rng.randrange(2**32),
        payload_type=ptype,
        payload=payload,
        capture_id=rng.choice([None, 1, 2001, 16777216, rng.randrange(2**32)]),
        capture_name=rng.choice([None, "kam-1", "x" * rng.randrange(300)]),
        auth_key=rng.choice([None, b"secret", rng.randbytes(rng.randrange(64))]),
        correlation_id=rng.choice([None, "a84b4c76e66710@pc33", "", "\u00e9t\u00e9;x", "A" * rng.randrange(2000)]),
        vlan=rng.choice([None, 0, 3, 65535]),
        keepalive=not payload and rng.random() < 0.5,
        extra=[(rng.choice([0, 0x0C, 0xFFFF]), rng.randrange(0x40), rng.randbytes(rng.randrange(20)))]
        if rng.random() < 0.2
        else [],
    )
    try:
        return encode_hep3(pkt, compress=rng.random() < 0.2)
    except DecodeError:  # payload over 64 KiB
        return encode_hep3(pkt.__class__(**{**pkt.__dict__, "payload": payload[:4000]}))


def _hep12(rng: random.Random, payload: bytes, version: int) -> bytes:
    v6 = rng.random() < 0.3
    alen = 16 if v6 else 4
    hdr_len = 4 + 4 + 2 * alen + (12 if version == 2 else 0)
    head = struct.pack("!BBBBHH", version, hdr_len, 10 if v6 else 2, rng.choice([17, 6]), 5060, 5062)
    head += _ip_bytes(rng, v6) + _ip_bytes(rng, v6)
    if version == 2:
        head += struct.pack("<IIHH", rng.randrange(2**32), rng.randrange(1_000_000), rng.randrange(65536), 0)
    return head + payload


_DISPLAY = ("", '"Al ice" ', "Alice ", '"\\"q\\"" ')


def gen_sip(rng: random.Random, response: bool | None = None) -> bytes:
    """A random SIP message (request or response), mostly well formed."""
    methods = ["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "NOTIFY", "INFO", "UPDATE", "PRACK", "MESSAGE"]
    method = rng.choice(methods)
    if response is None:
        response = rng.random() < 0.5
    host = rng.choice(["b.example.com", "10.0.0.2", "[2001:db8::2]", "h" * rng.randrange(1, 80)])
    user = rng.choice(["bob", "100", "+4930123", "", "a%20b", "\u00fc"])
    if response:
        code = rng.choice([100, 180, 183, 200, 202, 302, 401, 404, 486, 487, 500, 503, 603, rng.randrange(100, 700)])
        lines = [f"SIP/2.0 {code} {rng.choice(['OK', 'Ringing', 'Busy Here', '', 'Not Found'])}"]
    else:
        lines = [f"{method} sip:{user}@{host}{rng.choice(['', ':5060', ';transport=tcp'])} SIP/2.0"]
    call_id = rng.choice(["a84b4c76e66710@pc33", f"{rng.randrange(10**12)}@{host}", "x" * rng.randrange(1, 100)])
    headers = [
        f"Via: SIP/2.0/{rng.choice(['UDP', 'TCP', 'TLS', 'WS'])} {host}:5060;branch=z9hG4bK{rng.randrange(10**9)}"
        + rng.choice(["", ";rport", ";received=10.0.0.1;rport=5060"]),
        f"{rng.choice(['From', 'f', 'FROM'])}: {rng.choice(_DISPLAY)}<sip:alice@a.example>;tag={rng.randrange(10**6)}",
        f"{rng.choice(['To', 't'])}: {rng.choice(['<sip:bob@b.example>', 'sip:bob@b.example', '<tel:+123>;tag=9'])}",
        f"{rng.choice(['Call-ID', 'i', 'call-id'])}: {call_id}",
        f"CSeq: {rng.choice([1, 314159, 2**31 - 1, rng.randrange(10**6)])} {method}",
    ]
    extra = [
        "Max-Forwards: 70",
        "Contact: <sip:alice@10.0.0.1:5060>;expires=3600",
        "User-Agent: softphone/1.0",
        "Server: Asterisk PBX",
        "Reason: Q.850;cause=16",
        "P-Asserted-Identity: <sip:+4930123@a.example>",
        "Record-Route: <sip:proxy;lr>",
        "Allow: INVITE, ACK, BYE",
        "X-Custom: " + "v" * rng.randrange(50),
        "Expires: 3600",
        "Via: SIP/2.0/UDP 10.0.0.7;branch=z9hG4bKsecond",
        " folded continuation",
    ]
    headers += rng.sample(extra, rng.randrange(len(extra) + 1))
    rng.shuffle(headers)
    body = b""
    kind = rng.random()
    if kind < 0.35:
        body = SDP.encode()
        headers.append("Content-Type: application/sdp")
    elif kind < 0.45:
        body = VQ.encode()
        headers.append("Content-Type: application/vq-rtcpxr")
    length = len(body) if rng.random() < 0.9 else rng.choice([0, len(body) + 10, 2**32, -1])
    headers.append(f"{rng.choice(['Content-Length', 'l'])}: {length}")
    sep = rng.choice(["\r\n", "\r\n", "\n"])
    return (sep.join(lines + headers) + sep + sep).encode() + body


def gen_hep(rng: random.Random) -> bytes:
    """A random HEP packet (v3 mostly, v1/v2 sometimes) carrying SIP, RTCP JSON, a log line or junk."""
    r = rng.random()
    if r < 0.6:
        payload, ptype = gen_sip(rng), 1
    elif r < 0.75:
        payload, ptype = _rtcp_json(rng), 5
    elif r < 0.85:
        payload, ptype = rng.choice([b"log line", "r\u00e9sum\u00e9 \x00".encode(), rng.randbytes(30)]), 100
    else:
        payload, ptype = rng.randbytes(rng.randrange(200)), rng.choice([0, 2, 4, 8, 34, 54, 255, 1, 5, 100])
    v = rng.random()
    if v < 0.85:
        return _hep3(rng, payload, ptype)
    return _hep12(rng, payload, 2 if v < 0.95 else 1)


def _rtcp_json(rng: random.Random) -> bytes:
    choices: list[Any] = [
        {"type": 200, "ssrc": rng.randrange(2**32), "report_blocks": [{"fraction_lost": rng.randrange(256)}]},
        [1, 2, 3],
        {"nested": {"a": {"b": [None, True, 1.5e308]}}},
        "string",
        {"big": 10**30},
    ]
    value = rng.choice(choices)
    if rng.random() < 0.1:
        return b"[" * 2000 + b"]" * 2000
    return json.dumps(value).encode()


def gen_ami(rng: random.Random) -> bytes:
    """An AMI stream: banner, events, responses (one Follows), odd line endings; or a JSON recording."""
    if rng.random() < 0.15:
        events = []
        for _ in range(rng.randrange(1, 6)):
            ev: dict[str, Any] = {"Event": rng.choice(["Newchannel", "Hangup", "DialBegin", "", "X" * 200])}
            for k in rng.sample(["Uniqueid", "Linkedid", "Channel", "Cause", "Timestamp", "content"], 3):
                ev[k] = rng.choice(["1.1", "", 16, 1.5, "1529939196.1", None, True, ["x"], {"a": 1}, 10**20])
            events.append(ev)
        return json.dumps(events if rng.random() < 0.9 else {"a": events}).encode()
    eol = rng.choice(["\r\n", "\n"])
    parts = []
    if rng.random() < 0.5:
        parts.append(f"Asterisk Call Manager/{rng.choice(['1.3', '2.10.3', '7.0.3', '', 'x'])}{eol}")
    for _ in range(rng.randrange(1, 6)):
        r = rng.random()
        if r < 0.7:
            fields = [("Event", rng.choice(["Newchannel", "Hangup", "QueueMemberStatus", "VarSet", " ", "E" * 150]))]
            for key in rng.sample(
                [
                    "Privilege",
                    "Channel",
                    "Uniqueid",
                    "UniqueID",
                    "Linkedid",
                    "Timestamp",
                    "Variable",
                    "Cause",
                    "DestUniqueid",
                ],
                rng.randrange(6),
            ):
                fields.append(
                    (key, rng.choice(["1.1", "", "PJSIP/1-1", "1529939196.123456", "99999999999.9", "a" * 1100]))
                )
            if rng.random() < 0.2:
                fields.append(("Variable", "second"))
            parts.append(eol.join(f"{k}: {v}" for k, v in fields) + eol + eol)
        elif r < 0.85:
            parts.append(f"Response: Success{eol}ActionID: {rng.randrange(100)}{eol}Message: ok{eol}{eol}")
        else:
            out = eol.join(rng.choice(["Name/username", "", "  ", "Event: fake", "x: y"]) for _ in range(4))
            parts.append(f"Response: Follows{eol}Privilege: Command{eol}{out}{eol}--END COMMAND--{eol}{eol}")
    return "".join(parts).encode()


def gen_queue_log(rng: random.Random) -> bytes:
    events = ["ENTERQUEUE", "CONNECT", "COMPLETECALLER", "ABANDON", "RINGNOANSWER", "ADDMEMBER", "PAUSE", "FULL", ""]
    lines = []
    for _ in range(rng.randrange(1, 8)):
        data = [rng.choice(["", "1", "8001", "1366720340.3", "x|y", "\u00e9"]) for _ in range(rng.randrange(0, 7))]
        if rng.random() < 0.75:
            when = str(rng.choice([1366720340, 0, rng.randrange(2**31), 10**18, 2**64]))
        else:
            when = rng.choice(["2012-07-03 16:02:44", "2012-07-03 16:02:44.125", "2012-02-30 25:00:00", "1366720340.5"])
            when = f" {when} "
        fields = [when, f"{rng.randrange(10**10)}.{rng.randrange(1000)}", "q1", "SIP/8007", rng.choice(events), *data]
        lines.append("|".join(fields))
    if rng.random() < 0.1:
        lines += ["-------+-----", "(3 rows)", " time | callid"]
    return ("\n".join(lines) + "\n").encode()


def _csv_value(rng: random.Random, value: str) -> str:
    if rng.random() < 0.8:
        return '"' + value.replace('"', '""') + '"'
    return value


def _date(rng: random.Random) -> str:
    return rng.choice(
        [
            "2024-01-02 03:04:05",
            "",
            "2024-03-31 02:30:00",
            "9999-12-31 23:59:59",
            "2024-02-30 00:00:00",
            f"{rng.randrange(1, 10000):04d}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d} 00:00:00",
        ]
    )


def gen_cdr(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randrange(1, 6)):
        ncol = rng.choice([16, 17, 18, 19, 20, 21, 18, rng.randrange(1, 30)])
        values = []
        for i in range(ncol):
            if i in (9, 10, 11):
                values.append(_csv_value(rng, _date(rng)))
            elif i in (12, 13):
                values.append(rng.choice(["12", "0", "", "1.5", "-1", "99999999999", "1e400", "nan", "inf"]))
            else:
                values.append(
                    _csv_value(rng, rng.choice(["100", '"Al" <1>', "", "SIP/1-2", "a,b", "\u00e9", "x" * 1100]))
                )
        lines.append(",".join(values))
    return ("\n".join(lines) + "\n").encode()


def gen_cel(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randrange(1, 6)):
        ncol = rng.choice([20, 20, 20, 19, 21])
        values = [
            rng.choice(["CHAN_START", "HANGUP", "ANSWER", "LINKEDID_END", ""]),
            rng.choice(["1335310195.513823", "2012-04-25 01:29:55", "2012-04-25 01:29:55.5", "", "x", "1e309"]),
        ]
        values += [rng.choice(["1000", "", "1335310195.0", "TinCan/string", "x" * 1100]) for _ in range(ncol - 3)]
        values.append(
            rng.choice(
                ['{"hangupcause":16}', "16,dialplan/builtin,", "{bad", "{" + '"a":[' * 600 + "]" * 600 + "}", ""]
            )
        )
        lines.append(",".join(_csv_value(rng, v) for v in values))
    return ("\n".join(lines) + "\n").encode()


def gen_options(rng: random.Random) -> bytes:
    msg = gen_sip(rng, response=rng.random() < 0.9)
    if rng.random() < 0.3:  # a stream: keep-alives and two messages
        return b"\r\n\r\n" + msg + gen_sip(rng, response=True)
    return msg


def _ipv4(rng: random.Random, proto: int, payload: bytes, *, frag: tuple[int, bool] | None = None) -> bytes:
    offset, more = frag or (0, False)
    flags = (0x2000 if more else 0) | (offset // 8)
    head = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), rng.randrange(65536), flags, 64, proto, 0,
        _ip_bytes(rng, False), _ip_bytes(rng, False),
    )  # fmt: skip
    return head + payload


def _ipv6(rng: random.Random, proto: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB", 0x60000000, len(payload), proto, 64) + rng.randbytes(16) + rng.randbytes(16) + payload


def gen_pcap(rng: random.Random) -> bytes:
    """A small capture: pcap (either byte order) or pcapng, Ethernet/raw/SLL/NULL, IPv4/IPv6, UDP/TCP."""
    linktype = rng.choice([1, 1, 101, 113, 0])
    frames = []
    seq = rng.randrange(2**32)
    for _ in range(rng.randrange(1, 5)):
        payload = gen_sip(rng) if rng.random() < 0.8 else gen_hep(rng)
        v6 = rng.random() < 0.25
        if rng.random() < 0.6:
            l4 = struct.pack("!HHHH", 5060, 5060, 8 + len(payload), 0) + payload
            proto = 17
        else:
            l4 = struct.pack("!HHIIBBHHH", 5060, 5061, seq, 0, 0x50, 0x18, 65535, 0, 0) + payload
            seq = (seq + len(payload)) % 2**32
            proto = 6
        if not v6 and proto == 17 and rng.random() < 0.15 and len(l4) > 16:
            cut = (len(l4) // 2) & ~7
            ip = [_ipv4(rng, proto, l4[:cut], frag=(0, True)), _ipv4(rng, proto, l4[cut:], frag=(cut, False))]
        else:
            ip = [_ipv6(rng, proto, l4) if v6 else _ipv4(rng, proto, l4)]
        for pkt in ip:
            version6 = pkt[0] >> 4 == 6
            if linktype == 1:
                vlan = struct.pack("!HH", 0x8100, 3) if rng.random() < 0.2 else b""
                frame = rng.randbytes(12) + vlan + struct.pack("!H", 0x86DD if version6 else 0x0800) + pkt
            elif linktype == 113:
                frame = struct.pack("!HHH8sH", 0, 1, 6, rng.randbytes(8), 0x86DD if version6 else 0x0800) + pkt
            elif linktype == 0:
                frame = struct.pack("<I", 10 if version6 else 2) + pkt
            else:
                frame = pkt
            frames.append(frame)
    ts = 1_700_000_000
    if rng.random() < 0.7:
        order = rng.choice(["<", ">"])
        magic = rng.choice([0xA1B2C3D4, 0xA1B23C4D])
        out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
        for i, frame in enumerate(frames):
            out += struct.pack(order + "IIII", ts + i, i, len(frame), len(frame)) + frame
        return out
    body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    out = struct.pack("<II", 0x0A0D0D0A, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    opts = struct.pack("<HHB3x", 9, 1, 6) + struct.pack("<HH", 0, 0) if rng.random() < 0.5 else b""
    idb = struct.pack("<HHI", linktype, 0, 65535) + opts
    out += struct.pack("<II", 1, 12 + len(idb)) + idb + struct.pack("<I", 12 + len(idb))
    for i, frame in enumerate(frames):
        padded = frame + b"\x00" * (-len(frame) % 4)
        epb = struct.pack("<IIIII", 0, 0, ts + i, len(frame), len(frame)) + padded
        out += struct.pack("<II", 6, 12 + len(epb)) + epb + struct.pack("<I", 12 + len(epb))
    return out


# ---------------------------------------------------------------------------------------- mutation
INTERESTING_BYTES = (0x00, 0xFF, 0x0A, 0x0D, 0x3A, 0x20, 0x09, 0x80, 0xC3, 0x22, 0x2C, 0x7C, 0x3B, 0x3D, 0x7F)
HUGE_NUMBERS = (
    b"0",
    b"-1",
    b"65535",
    b"65536",
    b"2147483648",
    b"4294967295",
    b"4294967296",
    b"18446744073709551616",
    b"99999999999999999999999999999999",
    b"1e400",
    b"-0",
    b"NaN",
    b"0x10",
    b"\xd9\xa3",  # ARABIC-INDIC DIGIT THREE: str.isdigit() is true
    b"\xc2\xb2",  # SUPERSCRIPT TWO: isdigit() true, int() refuses
)
UNICODE = (
    "\u00e9".encode(),
    "\u202e".encode(),  # right-to-left override
    "\ufeff".encode(),  # BOM
    "\U0001f4de".encode(),
    "\u2028".encode(),  # line separator
    "\u0085".encode(),  # next line
    b"\xed\xa0\x80",  # a UTF-8-encoded surrogate (invalid)
    b"\xc3",  # truncated sequence
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    "\u0130".encode(),  # I with dot: lower() grows
    "\u00df".encode(),  # sharp s: upper() grows
    "\uff11".encode(),  # FULLWIDTH DIGIT ONE
)
TOKENS = (
    b"\r\n",
    b"\r\n\r\n",
    b"\n",
    b"\r",
    b":",
    b"|",
    b",",
    b'"',
    b";",
    b"=",
    b"<",
    b">",
    b"@",
    b"HEP3",
    b"SIP/2.0 ",
    b"Content-Length: ",
    b"Event: ",
    b"Response: Follows\r\n",
    b"--END COMMAND--",
    b"\x00",
    b"\t",
    b" ",
)
_DIGITS = frozenset(b"0123456789")


def _digit_run(buf: bytearray, rng: random.Random) -> tuple[int, int] | None:
    """A run of ASCII digits near a random place, or None."""
    n = len(buf)
    start = rng.randrange(n)
    for i in range(start, min(n, start + 256)):
        if buf[i] in _DIGITS:
            j = i
            while j < n and buf[j] in _DIGITS:
                j += 1
            return i, j
    return None


def mutate(rng: random.Random, data: bytes, splice: bytes | None = None, *, rounds: int | None = None) -> bytes:
    """One mutant of ``data``: 1-4 random edits (bit flips, inserts, deletes, length lies, splices, ...)."""
    buf = bytearray(data)
    for _ in range(rounds if rounds is not None else rng.randint(1, 4)):
        op = rng.randrange(18)
        n = len(buf)
        if op == 0 and n:  # truncate
            del buf[rng.randrange(n) :]
        elif op == 1 and n:  # bit flips
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(n)
                buf[i] ^= 1 << rng.randrange(8)
        elif op == 2 and n >= 6:  # a lie in a 16-bit length (HEP3 total at 4, else anywhere)
            pos = 4 if rng.random() < 0.3 else rng.randrange(0, n - 1)
            order = "!H" if rng.random() < 0.7 else "<H"
            struct.pack_into(
                order,
                buf,
                pos,
                rng.choice([0, 1, 5, 6, 7, 0xFFFF, n & 0xFFFF, (n + 1) & 0xFFFF, rng.randrange(0x10000)]),
            )
        elif op == 3 and n >= 8:  # a lie in a 32-bit length (pcap records, blocks)
            pos = rng.randrange(0, n - 3)
            order = rng.choice(["<I", ">I"])
            struct.pack_into(
                order, buf, pos, rng.choice([0, 1, 4, 12, 0xFFFFFFFF, 0x7FFFFFFF, n, rng.randrange(2**32)])
            )
        elif op == 4:  # Content-Length lies
            idx = buf.find(b"Content-Length: ")
            if idx < 0:
                idx = buf.find(b"l: ")
            if idx >= 0:
                colon = buf.find(b":", idx) + 2
                end = buf.find(b"\r\n", colon)
                buf[colon : end if end > 0 else colon] = rng.choice(
                    [b"", b"-1", b"4294967296", b"99999999999999999999", b"x", str(rng.randrange(5000)).encode()]
                )
        elif op == 5:  # insert random bytes
            i = rng.randrange(n + 1)
            buf[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 6 and n:  # delete a slice
            i = rng.randrange(n)
            del buf[i : i + rng.randint(1, 32)]
        elif op == 7 and n:  # duplicate a slice elsewhere
            i = rng.randrange(n)
            j = min(n, i + rng.randint(1, 64))
            k = rng.randrange(n + 1)
            buf[k:k] = buf[i:j]
        elif op == 8:  # oversize a header or field
            idx = buf.find(rng.choice([b"Call-ID: ", b"Reason: ", b"Via: ", b"From: ", b"Channel: ", b'"', b"|"]))
            if idx >= 0:
                buf[idx + 1 : idx + 1] = b"A" * rng.choice([1100, 9000, 70000])
        elif op == 9 and n:  # interesting bytes
            i = rng.randrange(n)
            buf[i] = rng.choice(INTERESTING_BYTES)
        elif op == 10 and n:  # huge numbers in place of a digit run
            run_ = _digit_run(buf, rng)
            if run_ is not None:
                buf[run_[0] : run_[1]] = rng.choice(HUGE_NUMBERS)
        elif op == 11:  # odd Unicode
            i = rng.randrange(n + 1)
            buf[i:i] = rng.choice(UNICODE)
        elif op == 12:  # syntax tokens
            i = rng.randrange(n + 1)
            buf[i:i] = rng.choice(TOKENS)
        elif op == 13 and splice:  # splice another seed in
            i = rng.randrange(n + 1)
            a = rng.randrange(len(splice))
            buf[i:] = splice[a : a + rng.randint(1, 512)] + (buf[i:] if rng.random() < 0.5 else b"")
        elif op == 14 and n:  # line-level: drop, duplicate or swap a line
            lines = bytes(buf).split(b"\n")
            if len(lines) > 1:
                i = rng.randrange(len(lines))
                choice = rng.randrange(3)
                if choice == 0:
                    del lines[i]
                elif choice == 1:
                    lines.insert(i, lines[i] * rng.choice([1, 2, 50]))
                else:
                    j = rng.randrange(len(lines))
                    lines[i], lines[j] = lines[j], lines[i]
                buf = bytearray(b"\n".join(lines))
        elif op == 15 and n:  # a byte repeated many times (deep nesting, long runs)
            i = rng.randrange(n)
            buf[i:i] = bytes([buf[i]]) * rng.choice([100, 1000, 5000])
        elif op == 16 and n >= 2:  # swap two bytes
            i, j = rng.randrange(n), rng.randrange(n)
            buf[i], buf[j] = buf[j], buf[i]
        elif op == 17 and n:  # a digit to another digit (keeps the syntax, changes values)
            run_ = _digit_run(buf, rng)
            if run_ is not None:
                buf[rng.randrange(run_[0], run_[1])] = rng.choice(b"0123456789")
    return bytes(buf)


# ---------------------------------------------------------------------------------------- targets
TOPOLOGY = TopologyConfig(nodes=(NodeConfig(name="n1", role="sbc", hep_capture_id=1),))
HEP_CONFIG = HepConfig(capture_id_byteswap=(16777216,))
_AUTH = b"secret"


def hep_packet_path(data: bytes) -> None:
    """The HEP collector's per-packet path plus the SIP parser on the same bytes; raises only DecodeError."""
    try:
        pkt = decode(data)
        _ = pkt.auth_key == _AUTH  # the collector's auth compare works on what decode returns
        if not pkt.keepalive:
            envelope_from_hep(
                pkt, topology=TOPOLOGY, hep=HEP_CONFIG, received_us=1_700_000_000_000_000, collector_node="c"
            )
    except DecodeError:
        pass
    with contextlib.suppress(DecodeError):
        sip_parse(data)


def _hep_target(data: bytes) -> None:
    hep_packet_path(data)
    if data[:4] == b"HEP3":  # and as a TCP stream, in two reads
        buf = bytearray()
        cut = (len(data) * 7) // 13
        for part in (data[:cut], data[cut:], data):
            buf += part
            while True:
                packets = frame_stream(buf)  # HepError ends the stream
                if not packets:
                    break
                for raw in packets:
                    if raw != data:  # the whole input was run above
                        hep_packet_path(raw)


def _sip_target(data: bytes) -> None:
    sip_parse(data)


_TRACKER_VERSIONS = (None, "1.3", "7.0.3")


def _ami_target(data: bytes) -> None:
    if data[:1] == b"[":  # a JSON recording (cacofonisk)
        tracker = DialectTracker()
        for i, fields in enumerate(load_events(data)):
            _ami_event(fields, tracker, i)
        return
    framers = (AmiFramer(), AmiFramer(max_line_bytes=512, max_fields=8, max_output_bytes=256))
    step = 1 + len(data) % 97
    for k, framer in enumerate(framers):
        items = []
        try:
            if k == 0:
                items += framer.feed(data)
            else:
                for i in range(0, len(data), step):
                    items += framer.feed(data[i : i + step])
            items += framer.close()
        except DecodeError as exc:  # the framer's contract: it never raises
            raise AssertionError(f"AmiFramer raised {exc!r}") from exc
        tracker = DialectTracker(_TRACKER_VERSIONS[len(data) % 3])
        for i, item in enumerate(items):
            if isinstance(item, Block) and item.kind == "event":
                with contextlib.suppress(DecodeError):
                    _ami_event(item.fields, tracker, i)


def _ami_event(fields: dict[str, str], tracker: DialectTracker, i: int) -> None:
    name = fields.get("Event", "")
    dialect = tracker.label(name, fields)
    envelope_from_fields(
        fields, node="pbx1", role="pbx", dialect=dialect, received_us=1_700_000_000_000_000, id_parts=("s", str(i))
    )


def _lines_target(parser: LineParser) -> Callable[[bytes], None]:
    maker = EnvelopeMaker(parser.kind, "pbx1", "pbx")

    def run_lines(data: bytes) -> None:
        lines = data.split(b"\n")
        # the batch path: every bad line becomes a dead letter, nothing may raise
        out = translate(lines, parser, maker, 1_700_000_000_000_000, component="fuzz")
        if len(out.envelopes) + len(out.deadletters) + out.skipped != len(lines):
            raise AssertionError(
                f"{len(lines)} lines in, {len(out.envelopes)} envelopes + {len(out.deadletters)} dead letters"
                f" + {out.skipped} skipped out"
            )
        for raw in lines[:4]:  # and the single-line parse: DecodeError only (caught by the engine)
            with contextlib.suppress(DecodeError):
                parser.parse(raw.decode("utf-8", "replace"))

    return run_lines


def _options_target(data: bytes) -> None:
    with contextlib.suppress(AnswerError):
        read_answer(data)
    buf = bytearray(data)
    while buf:
        message, used = options_frame(buf)  # AnswerError ends the stream
        if used > len(buf) or used < 0:
            raise AssertionError(f"frame consumed {used} of {len(buf)} bytes")
        del buf[:used]
        if message is None:
            break
        with contextlib.suppress(AnswerError):
            read_answer(message)


def _pcap_target(data: bytes) -> None:
    reader = PcapReader(io.BytesIO(data))
    for packet in reader:  # PcapError (a DecodeError) for a corrupt file
        payload = packet.payload
        if payload[:4] == b"HEP3" or payload[:1] in (b"\x01", b"\x02"):
            hep_packet_path(payload)
        else:
            with contextlib.suppress(DecodeError):
                sip_parse(payload)


@dataclass
class Target:
    """One fuzzed parser: what runs an input, what it may raise, how inputs are made."""

    name: str
    run: Callable[[bytes], None]
    allowed: tuple[type[BaseException], ...]
    generate: Callable[[random.Random], bytes]
    samples: list[bytes]
    corpus: Callable[[], list[bytes]]
    weight: float = 1.0
    seeds: list[bytes] = field(default_factory=list)

    def load_seeds(self) -> list[bytes]:
        if not self.seeds:
            self.seeds = list(self.samples) + [s[:MAX_SEED_BYTES] for s in self.corpus()]
        return self.seeds


def _corpus_files(*patterns: str, max_bytes: int = 1 << 20) -> list[Path]:
    if not CORPUS.is_dir():
        return []
    out: list[Path] = []
    for pattern in patterns:
        out += sorted(p for p in CORPUS.glob(pattern) if p.is_file() and p.stat().st_size <= max_bytes)
    return out


def _corpus_payloads(prefix: bytes | None, limit: int) -> list[bytes]:
    """Transport payloads from the corpus captures (SIP messages, HEP packets), deduplicated."""
    seen: dict[bytes, None] = {}
    for path in _corpus_files("**/*.pcap", "**/*.pcapng"):
        with contextlib.suppress(DecodeError), path.open("rb") as fh:
            for packet in PcapReader(fh):
                payload = packet.payload
                if (prefix is None and b"SIP/2.0" in payload[:200]) or (prefix and payload.startswith(prefix)):
                    seen.setdefault(payload[:MAX_SEED_BYTES], None)
                if len(seen) >= limit:
                    return list(seen)
    return list(seen)


def _hep_corpus() -> list[bytes]:
    seeds = [p.read_bytes() for p in _corpus_files("**/hep_vectors/*.bin")]
    return seeds + _corpus_payloads(b"HEP3", 60)


def _sip_corpus() -> list[bytes]:
    return [p for p in _corpus_payloads(None, 200) if p[:4] != b"HEP3"]


def _ami_corpus() -> list[bytes]:
    seeds = [p.read_bytes() for p in _corpus_files("panoramisk/**/*.yaml")]
    for path in _corpus_files("cacofonisk/**/*.json"):
        with contextlib.suppress(ValueError):
            events = orjson.loads(path.read_bytes())
            if isinstance(events, list):
                seeds.append(orjson.dumps(events[:6]))
    return seeds


def _queue_log_corpus() -> list[bytes]:
    lines = []
    for path in _corpus_files("wazo-doc/**/queue_log.rst"):
        lines += [line for line in path.read_bytes().splitlines() if line.count(b"|") >= 4]
    return [b"\n".join(lines[i : i + 6]) for i in range(0, len(lines), 6)]


def _csv_corpus(cel: bool) -> Callable[[], list[bytes]]:
    def load() -> list[bytes]:
        paths = _corpus_files("asterisk-testsuite/**/*.csv")
        return [p.read_bytes() for p in paths if p.name.startswith("CEL") == cel]

    return load


def _pcap_corpus() -> list[bytes]:
    return [p.read_bytes()[:MAX_SEED_BYTES] for p in _corpus_files("**/*.pcap", "**/*.pcapng")]


def _no_corpus() -> list[bytes]:
    return []


def _hep_samples() -> list[bytes]:
    rng = random.Random(0)
    out = [_hep3(rng, s, 1) for s in SIP_SAMPLES]
    out += [_hep3(rng, RTCP_JSON, 5), _hep3(rng, b"log line", 100), _hep3(rng, b"", 1)]
    out += [_hep12(rng, SIP_SAMPLES[1], 2), _hep12(rng, SIP_SAMPLES[2], 1)]
    return out


def _pcap_samples() -> list[bytes]:
    rng = random.Random(0)
    return [gen_pcap(rng) for _ in range(8)]


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("hep", _hep_target, (DecodeError,), gen_hep, _hep_samples(), _hep_corpus, 2.0),
        Target("sip", _sip_target, (SipError,), gen_sip, SIP_SAMPLES, _sip_corpus, 1.5),
        Target("ami", _ami_target, (DecodeError,), gen_ami, AMI_SAMPLES + AMI_JSON_SAMPLES, _ami_corpus, 1.0),
        Target(
            "queue_log", _lines_target(QueueLogParser("UTC")), (), gen_queue_log, QUEUE_LOG_SAMPLES, _queue_log_corpus
        ),
        Target("cdr", _lines_target(CdrParser(timezone="UTC")), (), gen_cdr, CDR_SAMPLES, _csv_corpus(False)),
        Target(
            "cel", _lines_target(CelParser(CEL_COLUMNS, timezone="UTC")), (), gen_cel, CEL_SAMPLES, _csv_corpus(True)
        ),
        Target("options", _options_target, (AnswerError,), gen_options, OPTIONS_SAMPLES, _no_corpus),
        Target("pcap", _pcap_target, (PcapError,), gen_pcap, _pcap_samples(), _pcap_corpus, 0.5),
    )
}


# ---------------------------------------------------------------------------------------- engine
@dataclass
class Crash:
    """One crashing input: what and where, the input, the traceback."""

    target: str
    signature: str
    data: bytes
    trace: str


@dataclass
class ChunkResult:
    """What one worker task (one chunk of one target) found."""

    target: str
    chunk: int = 0
    inputs: int = 0
    crashes: int = 0
    hangs: int = 0
    seconds: float = 0.0
    examples: list[Crash] = field(default_factory=list)


def _on_cpu_alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang("input used more CPU time than the limit")


def _on_wall_alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang("input blocked past the wall-clock limit")


# The most any collector hands a parser at once: the tailers cut lines at max_line_bytes and read
# read_block_bytes at a time (1 MiB each by default); a HEP datagram is at most 64 KiB. Mutations
# that multiply lines (x50) on a corpus file of a megabyte can reach hundreds of megabytes, which
# no collector would pass on; such an input is cut here instead.
MAX_INPUT_BYTES = 1 << 20


def inputs_for(target: Target, seed: int, chunk: int, count: int) -> Iterator[bytes]:
    """The inputs of one chunk of one target: a pure function of (seed, target, chunk)."""
    rng = random.Random(f"fuzz:{seed}:{target.name}:{chunk}")
    seeds = target.load_seeds()
    for _ in range(count):
        r = rng.random()
        if r < 0.2:
            data = target.generate(rng)
        elif r < 0.5:
            data = mutate(rng, target.generate(rng), rng.choice(seeds))
        elif r < 0.97:
            data = mutate(rng, rng.choice(seeds), rng.choice(seeds))
        else:
            data = rng.randbytes(rng.randrange(0, 256))
        yield data[:MAX_INPUT_BYTES]


def run_target(
    target: Target,
    inputs: Iterator[bytes] | list[bytes],
    *,
    timeout: float = 2.0,
    wall_timeout: float | None = None,
    keep: int = 20,
    crash_dir: Path | None = None,
) -> ChunkResult:
    """Run inputs through one target; count crashes (a wrong exception, or a hang).

    A hang is an input that uses more than ``timeout`` seconds of CPU time (measured in CPU
    time so a starved process on a busy machine does not report false hangs), or blocks for
    more than ``wall_timeout`` seconds (default ten times ``timeout``, at least 10 s).
    Crashing inputs are kept in the result (at most ``SAVE_PER_SIGNATURE`` per signature)
    and written to ``crash_dir`` at once when it is given.
    """
    result = ChunkResult(target.name)
    allowed = target.allowed
    run_one = target.run
    seen: dict[str, int] = {}
    wall = wall_timeout if wall_timeout is not None else max(10 * timeout, 10.0)
    alarm = timeout > 0 and hasattr(signal, "setitimer")
    old_prof = old_alrm = None
    if alarm:
        old_prof = signal.signal(signal.SIGPROF, _on_cpu_alarm)
        old_alrm = signal.signal(signal.SIGALRM, _on_wall_alarm)
    setitimer = signal.setitimer
    clock = time.perf_counter
    cpu = time.process_time
    start = clock()
    try:
        for data in inputs:
            result.inputs += 1
            c0 = cpu()
            failure: BaseException | None = None
            try:
                if alarm:
                    setitimer(signal.ITIMER_PROF, timeout)
                    setitimer(signal.ITIMER_REAL, wall)
                try:
                    run_one(data)
                finally:
                    if alarm:
                        setitimer(signal.ITIMER_PROF, 0)
                        setitimer(signal.ITIMER_REAL, 0)
            except allowed:
                pass
            except (Exception, Hang) as exc:
                failure = exc
            if failure is None and timeout > 0 and cpu() - c0 > timeout:  # a C call the alarm could not interrupt
                failure = Hang(f"input took {cpu() - c0:.2f} s of CPU time (limit {timeout} s)")
            if failure is not None:
                result.crashes += 1
                if isinstance(failure, Hang):
                    result.hangs += 1
                    sig = "Hang"
                else:
                    tb = traceback.extract_tb(failure.__traceback__)
                    where = tb[-1] if tb else None
                    place = f"{os.path.basename(where.filename)}:{where.lineno}" if where else "?"
                    sig = f"{type(failure).__name__} at {place}"
                n = seen.get(sig, 0)
                seen[sig] = n + 1
                if n < SAVE_PER_SIGNATURE and len(result.examples) < keep:
                    trace = "".join(traceback.format_exception(failure))
                    crash = Crash(target.name, sig, data, trace)
                    result.examples.append(crash)
                    if crash_dir is not None:
                        _save(crash, crash_dir)
    finally:
        if alarm:
            setitimer(signal.ITIMER_PROF, 0)
            setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGPROF, old_prof)
            signal.signal(signal.SIGALRM, old_alrm)
    result.seconds = clock() - start
    return result


def _task(args: tuple[str, int, int, int, float, str]) -> ChunkResult:
    name, seed, chunk, count, timeout, crash_dir = args
    target = TARGETS[name]
    result = run_target(target, inputs_for(target, seed, chunk, count), timeout=timeout, crash_dir=Path(crash_dir))
    result.chunk = chunk
    return result


def plan(n_inputs: int, names: list[str]) -> dict[str, int]:
    """Inputs per target: ``n_inputs`` shared by weight, the rounding remainder to the first targets."""
    weights = {name: TARGETS[name].weight for name in names}
    total = sum(weights.values())
    counts = {name: int(n_inputs * w / total) for name, w in weights.items()}
    for name in names[: n_inputs - sum(counts.values())]:
        counts[name] += 1
    return counts


def _save(crash: Crash, crash_dir: Path) -> Path:
    digest = hashlib.sha1(crash.data).hexdigest()[:16]
    folder = crash_dir / crash.target
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}.bin"
    path.write_bytes(crash.data)
    path.with_suffix(".txt").write_text(f"target: {crash.target}\nsignature: {crash.signature}\n\n{crash.trace}")
    return path


def run(
    n_inputs: int,
    *,
    workers: int = 2,
    seed: int = 1,
    targets: list[str] | None = None,
    crash_dir: Path | str | None = None,
    timeout: float = 2.0,
    max_seconds: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fuzz ``n_inputs`` inputs shared over the targets; the figures as a dict (see module docs).

    ``max_seconds`` stops handing out work after that long (the figures then count what ran,
    ``fuzz_requested`` what was asked and ``fuzz_complete`` is false).
    """
    names = list(targets or TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise ValueError(f"unknown fuzz targets: {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    counts = plan(n_inputs, names)
    out_dir = Path(crash_dir) if crash_dir is not None else DEFAULT_CRASH_DIR
    tasks = []
    for name in names:
        for chunk, first in enumerate(range(0, counts[name], CHUNK)):
            tasks.append((name, seed, chunk, min(CHUNK, counts[name] - first), timeout, str(out_dir)))
    tasks.sort(key=lambda t: (t[2], names.index(t[0])))  # interleave targets so progress is even
    per: dict[str, ChunkResult] = {name: ChunkResult(name) for name in names}
    examples: list[tuple[int, int, Crash]] = []
    start = time.monotonic()
    done = 0
    last_report = start

    def collect(res: ChunkResult) -> None:
        nonlocal done, last_report
        agg = per[res.target]
        agg.inputs += res.inputs
        agg.crashes += res.crashes
        agg.hangs += res.hangs
        agg.seconds += res.seconds
        done += res.inputs
        examples.extend((res.chunk, i, crash) for i, crash in enumerate(res.examples))
        if progress is not None:
            for crash in res.examples:
                progress(f"CRASH {crash.target} (chunk {res.chunk}): {crash.signature}")
        now = time.monotonic()
        if progress is not None and now - last_report >= 30:
            last_report = now
            crashes = sum(r.crashes for r in per.values())
            progress(f"{done} of {n_inputs} inputs, {crashes} crashes, {done / (now - start):.0f}/s")

    deadline = start + max_seconds if max_seconds is not None else None
    if workers <= 1:
        for task in tasks:
            if deadline is not None and time.monotonic() >= deadline:
                break
            collect(_task(task))
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers) as pool:
            for res in pool.imap_unordered(_task, tasks):
                collect(res)
                if deadline is not None and time.monotonic() >= deadline:
                    pool.terminate()  # chunks in flight are dropped: their inputs are not counted
                    break
    elapsed = time.monotonic() - start
    crashes = sum(r.crashes for r in per.values())
    # the first inputs of each signature in input order, whatever order the workers finished in
    signatures: dict[tuple[str, str], dict[str, Any]] = {}
    for _, _, crash in sorted(examples, key=lambda e: (e[0], e[1])):
        entry = signatures.setdefault((crash.target, crash.signature), {"saved": []})
        if len(entry["saved"]) < SAVE_PER_SIGNATURE:
            entry["saved"].append(str(_save(crash, out_dir)))
    return {
        "fuzz_inputs": done,
        "fuzz_crashes": crashes,
        "fuzz_hangs": sum(r.hangs for r in per.values()),
        "fuzz_inputs_per_sec": round(done / elapsed, 1) if elapsed > 0 else 0.0,
        "fuzz_seed": seed,
        "fuzz_requested": n_inputs,
        "fuzz_complete": done == sum(counts.values()),
        "fuzz_seconds": round(elapsed, 1),
        "fuzz_workers": workers,
        "fuzz_timeout_s": timeout,
        "fuzz_corpus": CORPUS.is_dir(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "targets": {
            name: {
                "inputs": r.inputs,
                "crashes": r.crashes,
                "hangs": r.hangs,
                "seconds": round(r.seconds, 2),
                "seeds": len(TARGETS[name].load_seeds()),
            }
            for name, r in per.items()
        },
        "crash_signatures": [
            {"target": t, "signature": s, "saved": entry["saved"]} for (t, s), entry in sorted(signatures.items())
        ],
        "crash_dir": str(out_dir) if signatures else None,
    }


def format_table(result: dict[str, Any]) -> str:
    """The result as a plain text table, one row per target and a total."""
    rows = [("target", "inputs", "crashes", "hangs", "seconds", "inputs/s")]
    for name, t in result["targets"].items():
        rate = t["inputs"] / t["seconds"] if t["seconds"] else 0.0
        rows.append((name, str(t["inputs"]), str(t["crashes"]), str(t["hangs"]), f"{t['seconds']:.1f}", f"{rate:.0f}"))
    rows.append(
        (
            "total",
            str(result["fuzz_inputs"]),
            str(result["fuzz_crashes"]),
            str(result["fuzz_hangs"]),
            f"{result['fuzz_seconds']:.1f}",
            f"{result['fuzz_inputs_per_sec']:.0f}",
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    for sig in result["crash_signatures"]:
        lines.append(f"CRASH {sig['target']}: {sig['signature']} -> {sig['saved'][0] if sig['saved'] else '-'}")
    lines.append(f"seed {result['fuzz_seed']}, {result['fuzz_workers']} workers, corpus {result['fuzz_corpus']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.fuzz``: exit 0 when nothing crashed, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs in all (shared over the targets by weight)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (1: in this process)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated subset of {','.join(TARGETS)}")
    parser.add_argument("--crash-dir", type=Path, default=DEFAULT_CRASH_DIR, help="where crashing inputs are saved")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds one input may take before it is a hang")
    parser.add_argument("--max-seconds", type=float, help="stop after this long and report what ran")
    parser.add_argument("--json", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    try:
        result = run(
            args.inputs,
            workers=args.workers,
            seed=args.seed,
            targets=targets,
            crash_dir=args.crash_dir,
            timeout=args.timeout,
            max_seconds=args.max_seconds,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["fuzz_crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
