#!/usr/bin/env python3
"""Turn the key=value results of bench/run.sh into a Markdown report (on stdout).

Usage: report.py RESULTS_ENV
Standard library only.
"""

import sys

A, B = "imgflow", "distribution"
PUSH_PULL = ("upload_mono", "upload_chunked", "download")
PHASES = ("upload_mono", "upload_chunked", "download", "upload_parallel", "wrk_manifest", "wrk_head")


def load(path):
    """Read KEY=VALUE lines (the value may contain '=')."""
    res = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if "=" in line:
                key, value = line.rstrip("\n").split("=", 1)
                res[key] = value
    return res


class Report:
    """Formatting helpers over one results dictionary."""

    def __init__(self, res):
        self.res = res

    def num(self, key):
        """A float result, or None when missing or empty."""
        try:
            return float(self.res[key])
        except (KeyError, ValueError):
            return None

    def disk_near(self, sysname):
        """Median fdatasync write rate of the dd runs interleaved with a system's uploads."""
        return self.num(f"{sysname}.disk_gbps")

    def rss_mib(self, sysname, group, phases):
        """Peak VmRSS in MiB of one process group over the given phases."""
        vals = [self.num(f"{sysname}.rss.{group}.{p}") for p in phases]
        vals = [v for v in vals if v is not None]
        return max(vals) / 1024 if vals else None

    def cpu_s(self, sysname, groups, phase):
        """Summed CPU seconds of the given groups during a phase."""
        vals = [self.num(f"{sysname}.cpu.{g}.{phase}") for g in groups]
        vals = [v for v in vals if v is not None]
        return sum(vals) if vals else None

    def other_cpu(self, sysname, phase):
        """Machine CPU time outside the benchmark's own process tree during a phase."""
        machine, bench = self.num(f"{sysname}.cpu.machine.{phase}"), self.num(f"{sysname}.cpu.bench.{phase}")
        if machine is None or bench is None:
            return None
        return max(0.0, machine - bench)

    def first_download_gbps(self, sysname):
        """GB/s of the first of the timed downloads (the first read of the blob after its upload)."""
        try:
            first = float(self.res[f"{sysname}.download_runs_s"].split()[0])
            return int(self.res["size_mib"]) * 1048576 / first / 1e9
        except (KeyError, ValueError, IndexError, ZeroDivisionError):
            return None

    def wrk_note(self, key):
        """Flag failed requests in a wrk run (they make its rate meaningless)."""
        bad = []
        for what, label in (("non2xx", "non-2xx"), ("sock_errors", "socket errors")):
            n = self.num(f"{key}.{what}")
            if n:
                bad.append(f"{int(n)} {label}")
        return f" ({', '.join(bad)}!)" if bad else ""


def fmt(v, unit, digits=2):
    """Format a number with its unit, or n/a."""
    if v is None:
        return "n/a"
    if unit == "req/s":
        return f"{v:,.0f} req/s"
    return f"{v:.{digits}f} {unit}"


def ratio(num, den):
    """num/den as '1.23x', or n/a."""
    if num is None or den is None or den == 0:
        return "n/a"
    return f"{num / den:.2f}x"


def verdict(ok):
    """PASS/FAIL/n/a."""
    if ok is None:
        return "n/a"
    return "**PASS**" if ok else "**FAIL**"


def noise(r):
    """One sentence on CPU time used outside the benchmark while each block ran."""
    ncpu = r.num("ncpu") or 1
    parts = []
    for key, label in (("ceiling", "ceilings"), (B, "nginx+Distribution"), (A, "imgflow")):
        other, wall = r.num(f"{key}.other_cpu_s"), r.num(f"{key}.wall_s")
        if other is not None and wall:
            parts.append(f"{label} {other:.1f} CPU-s in {wall:.0f} s ({100 * other / (wall * ncpu):.0f}% of the CPUs)")
    if not parts:
        return ""
    return ("CPU time outside the benchmark's own processes (other jobs, kernel writeback threads) while it ran: "
            + "; ".join(parts) + ". Large values mean noisy figures.")


def main():
    res = load(sys.argv[1])
    r = Report(res)
    n = r.num
    size = res.get("size_mib", "?")
    disk = n("ceiling.disk_gbps")
    out = []
    w = out.append
    w(f"# imgflow vs nginx + Distribution: side-by-side benchmark ({res.get('mode', '?')} mode)\n")
    w(f"One run of `bash bench/run.sh{' --quick' if res.get('mode') == 'quick' else ''}` on {res.get('date', '?')}.")
    w(f"Machine: {res.get('cpu', '?')}, {res.get('mem', '?')}, kernel {res.get('kernel', '?')}, "
      f"filesystem `{res.get('fs', '?')}`. Other load: CPUs {res.get('busy_start', '?')} busy just before the run "
      f"and {res.get('busy_end', '?')} just after it; load average {res.get('load_start', '?')} at start, "
      f"{res.get('load_end', '?')} at end.")
    w(noise(r) + "\n")
    w(f"Tools: {res.get('tools', '?')}. imgflow: {res.get('imgflow.version', 'n/a')}. "
      f"Distribution: {res.get('distribution.version', 'n/a')}.\n")
    for sysname in (A, B):
        if f"{sysname}.error" in res:
            w(f"> **{sysname}: {res[sysname + '.error']}** (its column is partial or n/a)\n")

    w("## Results\n")
    w("Ratio: imgflow / nginx+Distribution for rates, nginx+Distribution / imgflow for latency and memory, "
      "so above 1 means imgflow is better.\n")
    w("| metric | imgflow | nginx+Distribution | ratio | machine ceiling | target (issue) |")
    w("|---|---|---|---|---|---|")

    def row(metric, a, b, rat, ceiling, target):
        w(f"| {metric} | {a} | {b} | {rat} | {ceiling} | {target} |")

    disk_a, disk_b = r.disk_near(A), r.disk_near(B)
    direct_a, direct_b = n(f"{A}.disk_direct_gbps"), n(f"{B}.disk_direct_gbps")
    rounds = res.get("rounds", "?")
    up_ceiling = (f"dd with fdatasync, interleaved with the uploads: imgflow {fmt(disk_a, 'GB/s')}, "
                  f"B {fmt(disk_b, 'GB/s')}; same with O_DIRECT: imgflow {fmt(direct_a, 'GB/s')}, "
                  f"B {fmt(direct_b, 'GB/s')}; TLS up {fmt(n('ceiling.tls_upload_gbps'), 'GB/s')}; "
                  f"SHA-256 {fmt(n('ceiling.openssl_sha256_gbps'), 'GB/s')}")
    for key, label in (("upload_mono", f"Upload {size} MiB, monolithic POST+PUT (median of {rounds})"),
                       ("upload_chunked", f"Upload {size} MiB, chunked in {res.get('chunk_mib', '?')} MiB PATCHes "
                                          f"(median of {rounds})")):
        a, b = n(f"{A}.{key}_gbps"), n(f"{B}.{key}_gbps")
        ok = None if a is None or disk_a is None else a >= 0.9 * disk_a
        share = "" if a is None or not disk_a else f" (imgflow at {100 * a / disk_a:.0f}% of it"
        if share and direct_a:
            share += f"; {100 * a / direct_a:.0f}% of the O_DIRECT figure"
        share += ")" if share else ""
        row(label, fmt(a, "GB/s"), fmt(b, "GB/s"), ratio(a, b), up_ceiling,
            f">= 90% of the fdatasync rate{share}: {verdict(ok)}")
    a, b = n(f"{A}.download_gbps"), n(f"{B}.download_gbps")
    row(f"Download {size} MiB (median of 3)", fmt(a, "GB/s"), fmt(b, "GB/s"), ratio(a, b),
        f"TLS down {fmt(n('ceiling.tls_download_gbps'), 'GB/s')} (nginx static file)",
        f">= 2x B: {verdict(None if a is None or b is None else a >= 2 * b)}")
    a, b = r.first_download_gbps(A), r.first_download_gbps(B)
    row(f"Download {size} MiB, first GET of the blob (the first of those 3)", fmt(a, "GB/s"), fmt(b, "GB/s"),
        ratio(a, b), "-", "- (a blob written with O_DIRECT is not in the page cache: read from disk)")
    secs_a, secs_b = n(f"{A}.download_after_upload_s"), n(f"{B}.download_after_upload_s")
    mib = r.num("size_mib") or 0
    a = mib * 1048576 / secs_a / 1e9 if secs_a else None
    b = mib * 1048576 / secs_b / 1e9 if secs_b else None
    row(f"Download {size} MiB right after its upload's 201", fmt(a, "GB/s"), fmt(b, "GB/s"),
        ratio(a, b), "-", f">= 2x B: {verdict(None if a is None or b is None else a >= 2 * b)}")
    a, b = n(f"{A}.upload_parallel_gbps"), n(f"{B}.upload_parallel_gbps")
    row(f"Parallel uploads, {res.get('par', '?')} (total)", fmt(a, "GB/s"), fmt(b, "GB/s"), ratio(a, b),
        f"dd fdatasync: imgflow {fmt(disk_a, 'GB/s')}, B {fmt(disk_b, 'GB/s')}; O_DIRECT: imgflow "
        f"{fmt(direct_a, 'GB/s')}, B {fmt(direct_b, 'GB/s')}", "-")
    static_rps, static_p99 = n("ceiling.static_small.rps"), n("ceiling.static_small.p99_ms")
    for key, label in (("manifest_get", "Manifest GET"), ("blob_head", "Blob HEAD")):
        a, b = n(f"{A}.{key}.rps"), n(f"{B}.{key}.rps")
        row(f"{label} rate, 64 connections", fmt(a, "req/s") + r.wrk_note(f"{A}.{key}"),
            fmt(b, "req/s") + r.wrk_note(f"{B}.{key}"), ratio(a, b),
            f"nginx static small file {fmt(static_rps, 'req/s')}",
            f">= 5x B: {verdict(None if a is None or b is None else a >= 5 * b)}")
        a, b = n(f"{A}.{key}.p99_ms"), n(f"{B}.{key}.p99_ms")
        row(f"{label} p99 latency", fmt(a, "ms"), fmt(b, "ms"), ratio(b, a),
            f"nginx static small file {fmt(static_p99, 'ms')}",
            f"lower than B: {verdict(None if a is None or b is None else a < b)}")
    a = r.rss_mib(A, "imgflow", PUSH_PULL)
    breg, bngx = r.rss_mib(B, "registry", PUSH_PULL), r.rss_mib(B, "nginx", PUSH_PULL)
    bsum = None if breg is None or bngx is None else breg + bngx
    row(f"Peak RSS while pushing/pulling {size} MiB", fmt(a, "MiB", 1),
        f"{fmt(bsum, 'MiB', 1)} (registry {fmt(breg, 'MiB', 1)} + nginx {fmt(bngx, 'MiB', 1)})",
        ratio(bsum, a), "-", f"imgflow < 64 MiB: {verdict(None if a is None else a < 64)}")
    a = r.rss_mib(A, "imgflow", ("all",))
    breg, bngx = r.rss_mib(B, "registry", ("all",)), r.rss_mib(B, "nginx", ("all",))
    bsum = None if breg is None or bngx is None else breg + bngx
    row("Peak RSS over the whole run (incl. parallel + wrk)", fmt(a, "MiB", 1),
        f"{fmt(bsum, 'MiB', 1)} (registry {fmt(breg, 'MiB', 1)} + nginx {fmt(bngx, 'MiB', 1)})",
        ratio(bsum, a), "-", "-")
    hwa, hwb = n(f"{A}.hwm.imgflow"), [n(f"{B}.hwm.registry"), n(f"{B}.hwm.nginx")]
    w(f"\nVmHWM at the end (kernel's own peak, summed over processes): imgflow {fmt(hwa and hwa / 1024, 'MiB', 1)}; "
      f"registry {fmt(hwb[0] and hwb[0] / 1024, 'MiB', 1)}, nginx {fmt(hwb[1] and hwb[1] / 1024, 'MiB', 1)} "
      f"(master + workers).\n")

    w("## Server CPU time per phase\n")
    w("CPU seconds (user + system) used by the server processes while each phase ran "
      "(nginx+Distribution: registry + nginx); upload phases add up all rounds. The client (curl/wrk) shares the "
      "same 2 cores. The last column is the machine's CPU time outside this benchmark's processes during the "
      "phase (other jobs, kernel threads; approximate, sampled every 50 ms): large values mark a disturbed phase.\n")
    w("| phase | imgflow | nginx+Distribution (registry + nginx) | other CPU during imgflow / B |")
    w("|---|---|---|---|")
    for phase in PHASES:
        a = r.cpu_s(A, ("imgflow",), phase)
        reg, ngx = r.cpu_s(B, ("registry",), phase), r.cpu_s(B, ("nginx",), phase)
        bsum = None if reg is None or ngx is None else reg + ngx
        w(f"| {phase} | {fmt(a, 's')} | {fmt(bsum, 's')} ({fmt(reg, 's')} + {fmt(ngx, 's')}) | "
          f"{fmt(r.other_cpu(A, phase), 's', 1)} / {fmt(r.other_cpu(B, phase), 's', 1)} |")

    w("\n## Machine ceilings\n")
    w(f"- Sequential write of {size} MiB with fdatasync (`dd bs=4M conv=fdatasync` from page cache into a new "
      f"file on the registries' filesystem, after `sync` and {res.get('rest_s', '?')} s of rest): before the "
      f"systems run, median of 3 (runs {res.get('ceiling.disk_runs_s', 'n/a')} s) {fmt(disk, 'GB/s')}; "
      f"interleaved with each system's upload rounds (right before each round): imgflow "
      f"{res.get(A + '.disk_runs_gbps', 'n/a')} GB/s, nginx+Distribution {res.get(B + '.disk_runs_gbps', 'n/a')} GB/s. "
      f"The upload target compares imgflow's median upload with the median of its own interleaved dd runs, "
      f"since this VM's disk speed drifts.")
    w(f"- The same with `oflag=direct` (O_DIRECT, still fdatasync at the end): before the systems run "
      f"{fmt(n('ceiling.disk_direct_gbps'), 'GB/s')} (runs {res.get('ceiling.disk_direct_runs_s', 'n/a')} s); "
      f"interleaved: imgflow {res.get(A + '.disk_direct_runs_gbps', 'n/a')} GB/s, nginx+Distribution "
      f"{res.get(B + '.disk_direct_runs_gbps', 'n/a')} GB/s. On this VM the page-cache writeback path is the slow "
      f"part: a server writing its uploads with O_DIRECT (imgflow does) can pass the fdatasync figure, and the "
      f"O_DIRECT figure is its real disk ceiling.")
    w(f"- SHA-256: `openssl speed -evp sha256` (16 KiB blocks) {fmt(n('ceiling.openssl_sha256_gbps'), 'GB/s')}; "
      f"coreutils `sha256sum` from page cache {fmt(n('ceiling.sha256sum_gbps'), 'GB/s')}")
    w(f"- AES-256-GCM: `openssl speed -evp aes-256-gcm` {fmt(n('ceiling.openssl_aes256gcm_gbps'), 'GB/s')}")
    w(f"- Loopback TLS, separate nginx: GET of a {size} MiB static file with curl "
      f"{fmt(n('ceiling.tls_download_gbps'), 'GB/s')} (median of 3); POST of {size} MiB to a location that "
      f"discards it {fmt(n('ceiling.tls_upload_gbps'), 'GB/s')} (median of 3); small static file at 64 connections "
      f"{fmt(static_rps, 'req/s')}, p99 {fmt(static_p99, 'ms')}. This is what a stock nginx TLS front end "
      f"achieves with curl/wrk on the same 2 cores, a reference point rather than a hard bound.")

    w("\n## Setup\n")
    w(f"- imgflow: `target/release/imgflow serve --listen 127.0.0.1:0` with its own generated certs "
      f"({res.get(A + '.cert', 'n/a')}); TLS: {res.get(A + '.tls', 'n/a')}; ALPN offered to curl: "
      f"{res.get(A + '.alpn_default') or 'none'}.")
    w(f"- nginx+Distribution: `docker-registry serve` (filesystem storage, inmemory blob descriptor cache, access "
      f"log off) on plain HTTP 127.0.0.1, behind nginx terminating TLS ({res.get(B + '.cert', 'n/a')} dev CA cert); "
      f"`client_max_body_size 0; chunked_transfer_encoding on; proxy_request_buffering off; proxy_buffering off`, "
      f"upstream keepalive 64, 2 workers; TLS: {res.get(B + '.tls', 'n/a')}.")
    w(f"- Transfers: curl --http1.1 --cacert (`-T file`, `Content-Type: application/octet-stream`, no "
      f"`Expect: 100-continue`), wall time per operation including every request; GB/s = 10^9 bytes/s. "
      f"Data: random from /dev/urandom, {size} MiB blobs, SHA-256 digests computed beforehand. Each blob's HEAD "
      f"(digest, length) and the first round's big blobs' downloaded SHA-256 are checked (untimed). "
      f"{res.get(A + '.sync_after_upload_s', 'n/a')} s (imgflow) and {res.get(B + '.sync_after_upload_s', 'n/a')} s "
      f"(Distribution) of `sync` were left right after the first monolithic upload (large = data not yet on "
      f"disk at 201). Every disk-bound measurement (each dd, each upload) starts after `sync` and "
      f"{res.get('rest_s', '?')} s of rest, so that no writeback is in flight and deleted dd files have been "
      f"discarded (this VM's disk rewrites just-freed blocks several times faster than cold ones).")
    w(f"- Rates: `{res.get('wrk', 'wrk')}`; manifest GET with `Accept: application/vnd.oci.image.manifest.v1+json` "
      f"on a pushed OCI manifest; HEAD of a zero-length blob in the same repository (wrk 4.1 cannot read HEAD "
      f"answers that announce a body, wg/wrk#198). Memory: VmRSS of the process trees sampled every "
      f"50 ms per phase (bench/rsspoll.py).")
    w(f"- Upload rounds (GB/s), monolithic: imgflow {res.get(A + '.upload_mono_runs_gbps', 'n/a')}; "
      f"Distribution {res.get(B + '.upload_mono_runs_gbps', 'n/a')}. Chunked: imgflow "
      f"{res.get(A + '.upload_chunked_runs_gbps', 'n/a')}; Distribution "
      f"{res.get(B + '.upload_chunked_runs_gbps', 'n/a')}. Each round uploads new blobs (chunked: the 16 "
      f"parallel-upload blobs concatenated in a rotated order).")
    w(f"- Download runs (s): imgflow {res.get(A + '.download_runs_s', 'n/a')}; "
      f"Distribution {res.get(B + '.download_runs_s', 'n/a')}.")

    w("\n<details><summary>Raw results (key=value)</summary>\n\n```")
    for key, value in res.items():
        w(f"{key}={value}")
    w("```\n</details>")
    print("\n".join(out))


if __name__ == "__main__":
    main()
