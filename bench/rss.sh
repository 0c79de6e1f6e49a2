#!/usr/bin/env bash
# Peak memory under many clients: imgflow against nginx + Distribution 2.8, each with 64 and then
# 200 clients pushing and pulling (256 KiB blobs, small manifests; half HTTP/2, half HTTP/1.1 where the
# server offers h2) for 30 s, on a fresh server each time. The load generator is the Rust one of the
# tests (tests/common/load.rs, run through `cargo test --release --test resources -- --ignored bench_load`).
# Not in CI.   bash bench/rss.sh [--secs N] [--only imgflow|distribution] [--out FILE]   -> bench/results-rss.md
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
SECS=30 OUT=$HERE/results-rss.md SYSTEMS="imgflow distribution"
while (($#)); do
    case $1 in
        --secs) SECS=${2:?}; shift ;;
        --out) OUT=${2:?}; shift ;;
        --only) SYSTEMS=${2:?}; shift ;;
        *) echo "usage: bash bench/rss.sh [--secs N] [--only imgflow|distribution] [--out FILE]" >&2; exit 2 ;;
    esac
    shift
done
IMGFLOW_BIN=${IMGFLOW_BIN:-$REPO/target/release/imgflow}
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
for tool in curl openssl nginx docker-registry python3 cargo flock; do
    command -v "$tool" >/dev/null || die "missing $tool"
done
bench_begin rss

log "building the server and the load generator (release)"
(cd "$REPO" && cargo build --release --quiet && cargo test --release --quiet --test resources --no-run) \
    >"$T/build.log" 2>&1 || die "build failed: $(tail -20 "$T/build.log")"

# measure SYSTEM CLIENTS: fresh server, load for SECS, peak RSS of its process trees summed.
measure() {
    local sys=$1 n=$2 S=$T/$1-$2 poller line
    "start_$sys" "$S"
    echo load >"$PHASE"
    spawn "$S.rsspoll.log" python3 "$HERE/rsspoll.py" "$PHASE" "$S.rss.env" 0.05 "${GROUPS_ARGS[@]}"
    poller=$SPAWNED
    log "$sys: $n clients for $SECS s"
    line=$(cd "$REPO" && LOAD_URL=$BASE LOAD_CA=$CA LOAD_CLIENTS=$n LOAD_SECS=$SECS \
        cargo test --release --quiet --test resources -- --ignored --exact bench_load --nocapture 2>&1 |
        grep '^load:') || die "$sys: the load generator failed"
    log "$sys: $line"
    stop_pid "$poller"
    local kib
    kib=$(awk -F= '/^rss\.[^.]*\.all=/ { s += $2 } END { print s + 0 }' "$S.rss.env")
    put "$sys.$n.peak_kib" "$kib"
    put "$sys.$n.load" "${line#load: }"
    stop_all
}
for sys in $SYSTEMS; do
    for n in 64 200; do measure "$sys" "$n"; done
done
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
get() { sed -n "s/^$1=//p" "$RES"; }
{
    echo "# Peak RSS under many clients ($(date -u '+%Y-%m-%d %H:%M UTC'), $(git -C "$REPO" rev-parse --short HEAD))"
    echo
    echo "Each client: push a 256 KiB blob (POST + PUT), push a manifest, pull the manifest, pull the blob, in a loop"
    echo "for $SECS s over its own TLS connection (half HTTP/2, half HTTP/1.1). Fresh server per row; peak of"
    echo "the summed VmRSS of the server's process trees, sampled every 50 ms. $(nproc) CPUs, shared with the clients."
    echo
    echo "| clients | imgflow | nginx + Distribution |"
    echo "| --- | --- | --- |"
    for n in 64 200; do
        echo "| $n | $(mib "$(get "imgflow.$n.peak_kib")") MiB | $(mib "$(get "distribution.$n.peak_kib")") MiB |"
    done
    echo
    echo "Load generator output (requests ok / failed):"
    echo
    for sys in imgflow distribution; do
        for n in 64 200; do echo "- $sys, $n clients: $(get "$sys.$n.load")"; done
    done
} >"$OUT"
cat "$OUT"
log "written to $OUT"
