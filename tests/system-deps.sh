#!/usr/bin/env bash
# Installs the system packages the test suite needs when they are missing.
#   - a Java runtime and Maven for the real Kafka broker (tests/kafka/broker.py);
#   - the real VoIP peers of the end-to-end tests (tests/peers, tests/e2e):
#     kamailio (siptrace -> HEP3), sip-tester (sipp), rtpengine-daemon (RTCP -> HEP), sngrep (pcap -> HEP);
#   - chromium (headless, for the ladder page) and tshark (the pcap export).
# Idempotent: runs apt-get only when something is missing, and only as root on a Debian-like system.
# Installing must not start the packages' services: on a host with systemd they would take
# 5060 (kamailio), 2223/9090 (rtpengine) and collide with other engineers' runs.
set -euo pipefail

need=()
command -v java     >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn      >/dev/null 2>&1 || need+=(maven)
command -v kamailio >/dev/null 2>&1 || need+=(kamailio)
command -v sipp     >/dev/null 2>&1 || need+=(sip-tester)
command -v rtpengine >/dev/null 2>&1 || need+=(rtpengine-daemon)
command -v sngrep   >/dev/null 2>&1 || need+=(sngrep)
command -v chromium >/dev/null 2>&1 || need+=(chromium)   # the ladder page in a real browser
command -v tshark   >/dev/null 2>&1 || need+=(tshark)     # checks the exported pcap decodes as SIP
command -v promtool >/dev/null 2>&1 || need+=(prometheus) # alert rules: promtool check/test, and a real Prometheus evaluating them

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${need[*]}; install them (apt-get install ${need[*]})" >&2
  exit 0  # the tests that need them then skip with this message, or fail under CI=true
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive

# invoke-rc.d and deb-systemd-invoke ask policy-rc.d before starting a service; 101 means "no".
# Keep an existing policy (containers ship one); otherwise install a temporary one.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

# Other installers may hold the dpkg lock (parallel runs): wait for it instead of failing.
lock=(-o DPkg::Lock::Timeout=600)
apt-get "${lock[@]}" update -qq
apt-get "${lock[@]}" install -y -qq --no-install-recommends "${need[@]}" >/dev/null

# The units are enabled by the packages: keep them off at the next boot too, on systemd hosts.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  for unit in kamailio.service rtpengine-daemon.service rtpengine.service prometheus.service prometheus-node-exporter.service; do
    if systemctl list-unit-files "$unit" >/dev/null 2>&1; then
      systemctl disable --now "$unit" >/dev/null 2>&1 || true
    fi
  done
fi
