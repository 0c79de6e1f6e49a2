#!/usr/bin/env python3
"""Sample resident memory and CPU time of server process trees, per benchmark phase.

Usage: rsspoll.py PHASE_FILE OUT_FILE INTERVAL_S NAME=PID [NAME=PID ...] [cpu:NAME=PID ...]

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
  cpu.machine.PHASE=SECONDS  non-idle CPU time of the whole machine while PHASE was current
  samples=N
A group given as cpu:NAME=PID only gets the cpu.NAME.PHASE lines (no memory figures).
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
    """utime + stime + cutime + cstime of PID in seconds (its own CPU time plus that of its
    reaped children), or None if it has gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    rest = stat[stat.rfind(b")") + 2 :].split()
    return sum(int(v) for v in rest[11:15]) / CLK_TCK


def machine_busy():
    """Non-idle CPU seconds of the whole machine since boot (all CPUs)."""
    with open("/proc/stat", "r", encoding="ascii") as f:
        fields = f.readline().split()[1:]
    ticks = [int(v) for v in fields[:8]]
    # user nice system idle iowait irq softirq steal: busy = all but idle and iowait
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    phase_file, out_file, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
    groups, cpu_only = {}, set()
    for arg in sys.argv[4:]:
        name, pid = arg.split("=", 1)
        if name.startswith("cpu:"):
            name = name[4:]
            cpu_only.add(name)
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
    last_cpu = {}  # name -> summed CPU seconds of the group at the previous sample
    members = {}
    last_tree_refresh = 0.0
    samples = 0
    last_busy = machine_busy()

    while not stop:
        now = time.monotonic()
        if now - last_tree_refresh > 0.2:
            kids = children_map()
            members = {name: tree(pid, kids) for name, pid in groups.items()}
            last_tree_refresh = now
        try:
            with open(phase_file, "r", encoding="utf-8") as f:
                phase = f.read().strip() or "idle"
        except OSError:
            phase = "idle"
        busy = machine_busy()
        cpu_used[("machine", phase)] = cpu_used.get(("machine", phase), 0.0) + busy - last_busy
        last_busy = busy
        alive = False
        for name, pids in members.items():
            total, hwm_sum, seen = 0, 0, False
            cpu_now = 0.0
            for pid in pids:
                cpu_now += cpu_seconds(pid) or 0.0  # zombies too: their time is not in cutime yet
                rss = status_kib(pid, "VmRSS:")
                if rss is None:
                    continue
                seen = True
                total += rss
                hwm_sum += status_kib(pid, "VmHWM:") or 0
            if not seen:
                continue
            alive = alive or name not in cpu_only
            for key in ((name, phase), (name, "all")):
                peaks[key] = max(peaks.get(key, 0), total)
            hwm[name] = max(hwm.get(name, 0), hwm_sum)
            # A child that exits moves its time into its parent's cutime/cstime, so the sum stays
            # whole. It can still dip or spike for a moment (a child reaped between two reads), so
            # only growth above the highest sum seen so far is counted.
            if name in last_cpu:
                delta = max(0.0, cpu_now - last_cpu[name])
                cpu_used[(name, phase)] = cpu_used.get((name, phase), 0.0) + delta
            last_cpu[name] = max(last_cpu.get(name, 0.0), cpu_now)
        samples += 1
        if not alive and samples > 1:
            break
        time.sleep(interval)

    with open(out_file, "w", encoding="utf-8") as f:
        for (name, phase), kib in sorted(peaks.items()):
            if name not in cpu_only:
                f.write(f"rss.{name}.{phase}={kib}\n")
        for name, kib in sorted(hwm.items()):
            if name not in cpu_only:
                f.write(f"hwm.{name}={kib}\n")
        for (name, phase), secs in sorted(cpu_used.items()):
            f.write(f"cpu.{name}.{phase}={secs:.2f}\n")
        f.write(f"samples={samples}\n")


if __name__ == "__main__":
    main()
