"""Seeded rows for the dashboard SQL tests: every panel has something to show.

Times are relative to the engine's now(), so "now" panels (active calls, waiting callers,
service level of the last hour) find rows. Nodes ``sbc-1``/``sbc-2``, trunk ``carrier-a``,
queue ``support``: the values the "one selected" runs pick.
"""

from __future__ import annotations

NODE = "sbc-1"
TRUNK = "carrier-a"
QUEUE = "support"
CALL_ID = "call-1@example.org"

_ago = "now64(6) - INTERVAL {} SECOND".format

SEED_SQL = [
    # SIP messages of two calls, seen by two nodes.
    f"""
    INSERT INTO sip_messages (id, node, role, ts, received, call_id, is_request, method, status, reason, cseq,
                              src_ip, src_port, dst_ip, dst_port, transport, user_agent)
    VALUES
      ('m1', 'sbc-1', 'sbc', {_ago(600)}, {_ago(600)}, '{CALL_ID}', true, 'INVITE', 0, '', 1,
       '10.0.0.1', 5060, '192.0.2.10', 5060, 'udp', 'phone'),
      ('m2', 'sbc-1', 'sbc', {_ago(599)}, {_ago(599)}, '{CALL_ID}', false, 'INVITE', 200, 'OK', 1,
       '192.0.2.10', 5060, '10.0.0.1', 5060, 'udp', 'carrier'),
      ('m3', 'sbc-2', 'sbc', {_ago(300)}, {_ago(300)}, 'call-2@example.org', true, 'INVITE', 0, '', 1,
       '10.0.0.2', 5060, '192.0.2.10', 5060, 'udp', 'phone'),
      ('m4', 'sbc-2', 'sbc', {_ago(299)}, {_ago(299)}, 'call-2@example.org', false, 'INVITE', 503, 'Unavailable', 1,
       '192.0.2.10', 5060, '10.0.0.2', 5060, 'udp', 'carrier')
    """,
    # An answered and ended leg, a live one and a failed one.
    f"""
    INSERT INTO call_legs (id, call_id, leg_id, from_tag, caller, callee, started_at, answered_at, ended_at,
                           pdd_ms, duration_secs, status, reason, state, nodes, src_ip, dst_ip, version, updated_at)
    VALUES
      ('l1@1', '{CALL_ID}', '{CALL_ID}:a', 'a', '100', '200', {_ago(600)}, {_ago(598)}, {_ago(480)},
       900, 118, 200, 'OK', 'completed', ['sbc-1'], '10.0.0.1', '192.0.2.10', 1, {_ago(480)}),
      ('l2@1', 'call-2@example.org', 'call-2@example.org:b', 'b', '101', '201', {_ago(300)}, NULL, {_ago(299)},
       NULL, NULL, 503, 'Unavailable', 'failed', ['sbc-2'], '10.0.0.2', '192.0.2.10', 1, {_ago(299)}),
      ('l3@1', 'call-3@example.org', 'call-3@example.org:c', 'c', '102', '202', {_ago(30)}, {_ago(25)}, NULL,
       700, NULL, 200, 'OK', 'answered', ['sbc-1', 'sbc-2'], '10.0.0.3', '192.0.2.10', 1, {_ago(25)})
    """,
    f"""
    INSERT INTO call_links (id, call_id, linked_call_id, via, value, ts)
    VALUES ('k1', '{CALL_ID}', 'call-3@example.org', 'x_cid', 'abc', {_ago(30)})
    """,
    # RTCP reports: one good call, one poor call.
    f"""
    INSERT INTO media_quality (id, call_id, node, ts, report_type, fraction_lost, jitter_ms, rtt_ms, r_factor, mos,
                               codec)
    VALUES
      ('q1', '{CALL_ID}', 'sbc-1', {_ago(560)}, 'RR', 0.001, 4.5, 30, 92, 4.3, 'PCMA'),
      ('q2', 'call-3@example.org', 'sbc-2', {_ago(20)}, 'RR', 0.08, 45, 220, 55, 2.9, ''),
      ('q3', 'call-3@example.org', 'sbc-2', {_ago(10)}, 'XR', 0.05, NULL, NULL, NULL, NULL, '')
    """,
    # OPTIONS probes from both nodes to the trunk: sbc-2 gets no answer.
    f"""
    INSERT INTO options_probes (id, node, role, ts, received, target, target_kind, transport, passive, status,
                                rtt_ms, error)
    VALUES
      ('o1', 'sbc-1', 'sbc', {_ago(120)}, {_ago(120)}, '{TRUNK}', 'trunk', 'udp', false, 200, 21.5, ''),
      ('o2', 'sbc-2', 'sbc', {_ago(120)}, {_ago(120)}, '{TRUNK}', 'trunk', 'udp', false, 0, NULL, 'timeout'),
      ('o3', 'sbc-1', 'sbc', {_ago(60)}, {_ago(60)}, '{TRUNK}', 'trunk', 'udp', false, 200, 25.0, '')
    """,
    f"""
    INSERT INTO ami_events (id, node, role, ts, received, event) VALUES ('a1', 'pbx-1', 'pbx', {_ago(60)}, {_ago(60)},
      'Newchannel')
    """,
    f"""
    INSERT INTO health_transitions (id, scope, node, target, target_kind, from_state, to_state, at, reason, status,
                                    rtt_ms, error, passive, flapping)
    VALUES ('h1', 'node', 'sbc-2', '{TRUNK}', 'trunk', 'up', 'down', {_ago(100)}, '3 failures', 0, NULL, 'timeout',
            false, false)
    """,
    # Queue sessions (final ones feed queue_sla_15m through its materialized view) and one waiting caller.
    f"""
    INSERT INTO queue_sessions (id, session_id, node, queue, callid, linkedid, caller, entered_at, answered_at,
                                ended_at, wait_secs, talk_secs, ring_attempts, ring_secs, agent, state, outcome,
                                answered, final, version, updated_at)
    VALUES
      ('s1', 's1', 'pbx-1', '{QUEUE}', 'u1', 'u1', '100', {_ago(400)}, {_ago(390)}, {_ago(200)}, 10, 190, 1, 8,
       'Agent/1001', 'ended', 'completed_agent', true, true, 1, {_ago(200)}),
      ('s2', 's2', 'pbx-1', '{QUEUE}', 'u2', 'u2', '101', {_ago(380)}, NULL, {_ago(320)}, 60, NULL, 2, 30,
       '', 'ended', 'abandoned', false, true, 1, {_ago(320)}),
      ('s3', 's3', 'pbx-1', 'sales', 'u3', 'u3', '102', {_ago(350)}, {_ago(310)}, {_ago(100)}, 40, 210, 1, 5,
       'Agent/1002', 'ended', 'completed_caller', true, true, 1, {_ago(100)}),
      ('s4', 's4', 'pbx-1', '{QUEUE}', 'u4', 'u4', '103', {_ago(20)}, NULL, NULL, NULL, NULL, 0, 0,
       '', 'waiting', '', false, false, 1, {_ago(20)})
    """,
    f"""
    INSERT INTO agent_states (id, node, agent, queue, state, reason, started_at, ended_at, source, version, updated_at)
    VALUES
      ('g1', 'pbx-1', 'Agent/1001', '', 'logged_in', '', {_ago(3600)}, NULL, 'queue_log', 1, {_ago(3600)}),
      ('g2', 'pbx-1', 'Agent/1002', '{QUEUE}', 'paused', 'lunch', {_ago(900)}, NULL, 'ami', 1, {_ago(900)})
    """,
    # Registrations: a successful one, a challenged one, a failing AOR.
    f"""
    INSERT INTO registrations (id, aor, contact, expires, status, reason, node, nodes, user_agent, src_ip, call_id,
                               cseq, requested_at, answered_at, challenge, version)
    VALUES
      ('r1', '100@example.org', 'sip:100@10.0.0.1', 3600, 401, 'Unauthorized', 'sbc-1', ['sbc-1'], 'phone',
       '10.0.0.1', 'reg-1', 1, {_ago(900)}, {_ago(900)}, true, 1),
      ('r2', '100@example.org', 'sip:100@10.0.0.1', 3600, 200, 'OK', 'sbc-1', ['sbc-1'], 'phone', '10.0.0.1',
       'reg-1', 2, {_ago(899)}, {_ago(899)}, false, 1),
      ('r3', '300@example.org', 'sip:300@10.0.0.9', 3600, 403, 'Forbidden', 'sbc-2', ['sbc-2'], 'bot', '10.0.0.9',
       'reg-3', 1, {_ago(500)}, {_ago(500)}, false, 1)
    """,
    f"""
    INSERT INTO deadletters (id, component, reason, detail, node, source_topic, received, raw)
    VALUES ('d1', 'hep', 'bad_header', 'HEP3 length mismatch', 'sbc-1', 'callscope.sip', {_ago(50)}, 'xx')
    """,
]
