#!/usr/bin/env python3
"""`failover-gap.py KILLED_AT_FILE NEW_LEADER_LOG`: from the new leader's JSON log, how long
after the kill it started dispatching and made its first assignment (scripts/bench-cluster.sh
failover). Prints one JSON object (milliseconds; null when it never happened)."""
import datetime
import json
import sys


def parse(text):
    return datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))


killed = parse(open(sys.argv[1]).read())
leading = assigned = None
for line in open(sys.argv[2]):
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    at = parse(entry["timestamp"])
    message = entry.get("fields", {}).get("message", "")
    if at < killed:
        continue
    if leading is None and message == "leading: starting the dispatcher":
        leading = at
    if leading is not None and message == "brigade assigned":
        assigned = at
        break


def ms(at):
    return None if at is None else round((at - killed).total_seconds() * 1000)


print(json.dumps({"new_leader_dispatching_ms": ms(leading), "first_assignment_ms": ms(assigned)}))
