#!/usr/bin/env python3
"""Sample resident memory and CPU time of server process trees, per benchmark phase.

Usage: rsspoll.py PHASE_FILE OUT_FILE INTERVAL_S NAME=PID [NAME=PID ...]

Each NAME=PID is a group: PID plus all of its descendants (so an nginx master
also covers its workers). Every INTERVAL_S seconds the poller reads the current
phase name from PHASE_FILE and, for each group, sums VmRSS over the group's
processes, keeping the maximum per (group, phase) and overall. It also tracks
each group's CPU time (utime + stime) at phase changes.

On SIGTERM or SIGINT (or when every group has exited) it writes key=value lines
to OUT_FILE:
  rss.NAME.PHASE=KiB      peak summed VmRSS seen while PHASE was current
  rss.NAME.all=KiB        peak summed VmRSS over the whole run
  hwm.NAME=KiB            sum of VmHWM of the group's processes at the last sample
  cpu.NAME.PHASE=SECONDS  CPU time the group used while PHASE was current
  samples=N
Standard library only.
"""

import os
import signal
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def children_map():
    """Return {ppid: [pid, ...]} for every process currently in /proc."""
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces.
        rest = stat[stat.rfind(b")") + 2 :].split()
        kids.setdefault(int(rest[1]), []).append(int(entry))
    return kids


def tree(root, kids):
    """The root PID and all of its descendants."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def status_kib(pid, field):
    """Read a 'Field:   N kB' value from /proc/PID/status, or None."""
    try:
        with open(f"/proc/{pid}/status", "r", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid):
    """utime + stime of PID in seconds, or None if it has gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    rest = stat[stat.rfind(b")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    phase_file, out_file, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
    groups = {}
    for arg in sys.argv[4:]:
        name, pid = arg.split("=", 1)
        groups[name] = int(pid)

    stop = False

    def on_signal(_signum, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    peaks = {}  # (name, phase) -> KiB
    hwm = {}  # name -> KiB
    cpu_used = {}  # (name, phase) -> seconds
    last_cpu = {}  # name -> {pid: seconds}
    members = {}
    last_tree_refresh = 0.0
    samples = 0

    while not stop:
        now = time.monotonic()
        if now - last_tree_refresh > 0.5:
            kids = children_map()
            members = {name: tree(pid, kids) for name, pid in groups.items()}
            last_tree_refresh = now
        try:
            with open(phase_file, "r", encoding="utf-8") as f:
                phase = f.read().strip() or "idle"
        except OSError:
            phase = "idle"
        alive = False
        for name, pids in members.items():
            total, hwm_sum, seen = 0, 0, False
            cpu_now = {}
            for pid in pids:
                rss = status_kib(pid, "VmRSS:")
                if rss is None:
                    continue
                seen = True
                total += rss
                hwm_sum += status_kib(pid, "VmHWM:") or 0
                cpu = cpu_seconds(pid)
                if cpu is not None:
                    cpu_now[pid] = cpu
            if not seen:
                continue
            alive = True
            for key in ((name, phase), (name, "all")):
                peaks[key] = max(peaks.get(key, 0), total)
            hwm[name] = max(hwm.get(name, 0), hwm_sum)
            prev = last_cpu.get(name, {})
            delta = sum(c - prev.get(pid, 0.0) for pid, c in cpu_now.items() if pid in prev)
            delta += sum(c for pid, c in cpu_now.items() if pid not in prev and prev)
            cpu_used[(name, phase)] = cpu_used.get((name, phase), 0.0) + delta
            last_cpu[name] = cpu_now
        samples += 1
        if not alive and samples > 1:
            break
        time.sleep(interval)

    with open(out_file, "w", encoding="utf-8") as f:
        for (name, phase), kib in sorted(peaks.items()):
            f.write(f"rss.{name}.{phase}={kib}\n")
        for name, kib in sorted(hwm.items()):
            f.write(f"hwm.{name}={kib}\n")
        for (name, phase), secs in sorted(cpu_used.items()):
            f.write(f"cpu.{name}.{phase}={secs:.2f}\n")
        f.write(f"samples={samples}\n")


if __name__ == "__main__":
    main()
