#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions called indirectly (trap, "start_$name")
# Side-by-side benchmark: `imgflow serve` against nginx (TLS) + CNCF Distribution 2.8 (Debian's
# docker-registry), plus the machine's own ceilings (disk fdatasync, SHA-256, loopback TLS).
# Run by hand, not in CI:   bash bench/run.sh [--quick] [--only imgflow|distribution] [--keep] [--out FILE]
#                           [--wait-idle MINUTES]  (first wait for the other processes to leave the CPUs idle)
# Writes a Markdown report (bench/results.md, or bench/results-quick.md with --quick) and prints it.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
QUICK=0 KEEP=0 ONLY="" OUT="" WAIT_IDLE=0
while (($#)); do
    case $1 in
        --quick) QUICK=1 ;;
        --keep) KEEP=1 ;;
        --only) ONLY=${2:?--only needs imgflow or distribution}; shift ;;
        --out) OUT=${2:?--out needs a file}; shift ;;
        --wait-idle) WAIT_IDLE=${2:?--wait-idle needs minutes}; shift ;;
        -h | --help) sed -n '3,7p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
case $ONLY in "" | imgflow | distribution) ;; *) echo "--only: imgflow or distribution" >&2; exit 2 ;; esac

if ((QUICK)); then SIZE_MIB=256 WRK_DUR=3 ROUNDS=1 MODE=quick; else SIZE_MIB=1024 WRK_DUR=10 ROUNDS=3 MODE=full; fi
ROUNDS=${BENCH_ROUNDS:-$ROUNDS} # rounds of (dd, monolithic upload, chunked upload) per system; medians reported
# Seconds of rest after `sync` before every disk-bound measurement, so that each starts with no
# writeback in flight and with the blocks of deleted files discarded (see disk_write).
REST=${BENCH_REST:-8}
PAR_N=16 WRK_CONNS=64 DL_REPEAT=3
# The 16 parallel blobs are also the PATCH bodies of the chunked uploads (64 MiB each in full mode):
# round r uploads their concatenation rotated by r, a distinct blob each round, with no extra data.
PAR_MIB=$((SIZE_MIB / PAR_N)) CHUNK_MIB=$((SIZE_MIB / PAR_N))
: "${OUT:=$HERE/results$( ((QUICK)) && echo -quick).md}"
IMGFLOW_BIN=${IMGFLOW_BIN:-$REPO/target/release/imgflow}

# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

for tool in curl openssl nginx docker-registry wrk python3 sha256sum dd awk flock; do
    command -v "$tool" >/dev/null ||
        die "missing $tool (apt-get install -y curl openssl nginx docker-registry wrk python3 coreutils)"
done

# One benchmark at a time on this machine: two at once would spoil each other's figures.
exec 9>"${BENCH_TMPDIR:-/tmp}/imgflow-bench.lock"
if ! flock -n 9; then
    log "another bench/run.sh is running; waiting for it to finish"
    flock 9
fi

T=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/imgflow-bench.XXXXXX")
RES=$T/results.env
PHASE=$T/phase
RQ=$T/req # prefix of the last request's headers (.h) and body (.b)
: >"$RES"
: >"$T/pids"

cleanup() {
    trap - INT TERM
    stop_all
    kill_tree $$
    if ((KEEP)); then log "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Disk space: test data, both registries' blobs, one dd file at a time, and 2 GiB to spare.
need_mib=$(((ROUNDS + 1) * SIZE_MIB + 2 * (2 * ROUNDS + 1) * SIZE_MIB + SIZE_MIB + 2048))
avail_mib=$(df -Pm "$T" | awk 'NR == 2 { print $4 }')
((avail_mib >= need_mib)) || die "$T has $avail_mib MiB free; the $MODE benchmark needs $need_mib MiB"

# ---------------------------------------------------------------- test data
# chunk_files ROUND: the PATCH bodies of that round's chunked upload, in order.
chunk_files() {
    local i
    for ((i = 0; i < PAR_N; i++)); do echo "$T/data/par_$(((i + $1) % PAR_N))"; done
}
gen_data() {
    log "generating test data in $T/data ($MODE mode, from /dev/urandom)"
    mkdir -p "$T/data"
    local D=$T/data i t0
    for ((i = 0; i < ROUNDS; i++)); do
        dd if=/dev/urandom of="$D/mono_$i" bs=1M count="$SIZE_MIB" iflag=fullblock status=none
    done
    for ((i = 0; i < PAR_N; i++)); do
        dd if=/dev/urandom of="$D/par_$i" bs=1M count="$PAR_MIB" iflag=fullblock status=none
    done
    dd if=/dev/urandom of="$D/layer" bs=4096 count=1 status=none
    : >"$D/empty"
    BIG=$((SIZE_MIB * 1048576)) PAR_BYTES=$((PAR_MIB * 1048576))
    t0=$(now)
    sha256sum "$D/mono_0" >/dev/null
    put ceiling.sha256sum_gbps "$(gbps "$BIG" "$(since "$t0")")"
    for ((i = 0; i < ROUNDS; i++)); do MONO_DIG[i]=$(digest "$D/mono_$i"); done
    for ((i = 0; i < PAR_N; i++)); do PAR_DIG[i]=$(digest "$D/par_$i"); done
    for ((i = 0; i < ROUNDS; i++)); do
        # shellcheck disable=SC2046,SC2002 # file names without spaces; cat concatenates
        CHUNKED_DIG[i]="sha256:$(cat $(chunk_files "$i") | openssl dgst -sha256 -r | cut -d' ' -f1)"
    done
    DIG_LAYER=$(digest "$D/layer")
    DIG_EMPTY=$(digest "$D/empty")
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}' \
        "$DIG_LAYER" >"$D/config.json"
    DIG_CONFIG=$(digest "$D/config.json")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
        "$DIG_CONFIG" "$(size_of "$D/config.json")" "$DIG_LAYER" 4096 >"$D/manifest.json"
    DIG_MANIFEST=$(digest "$D/manifest.json")
    printf 'wrk.method = "HEAD"\n' >"$T/head.lua"
}

# ---------------------------------------------------------------- machine ceilings
# settle: flush dirty pages, then let the disk rest for REST seconds.
settle() {
    sync
    sleep "$REST"
}
# disk_write FILE [direct]: seconds to write a big blob to a new FILE with fdatasync (and O_DIRECT
# with "direct"), from a rested disk; FILE is then deleted. (This VM's disk writes blocks freed a moment ago several times faster than
# cold ones, until the filesystem's discard reaches them a few seconds later: the rest in settle
# keeps deleted files from speeding up whatever writes next.)
disk_write() {
    local t0
    settle
    t0=$(now)
    dd if="$T/data/mono_0" of="$1" bs=4M conv=fdatasync ${2:+oflag=direct} status=none
    since "$t0"
    rm -f "$1"
}

ceilings() {
    local D=$T/data t0 c=$T/ceiling times=() i
    log "ceiling: $SIZE_MIB MiB sequential write with fdatasync (buffered, then O_DIRECT) on $(df --output=source "$T" | tail -1) x $DL_REPEAT"
    for ((i = 0; i < DL_REPEAT; i++)); do times+=("$(disk_write "$T/dd")"); done
    put ceiling.disk_gbps "$(gbps "$BIG" "$(median "${times[@]}")")"
    put ceiling.disk_runs_s "${times[*]}"
    times=()
    for ((i = 0; i < DL_REPEAT; i++)); do times+=("$(disk_write "$T/dd" direct)"); done
    put ceiling.disk_direct_gbps "$(gbps "$BIG" "$(median "${times[@]}")")"
    put ceiling.disk_direct_runs_s "${times[*]}"
    log "ceiling: openssl speed sha256 / aes-256-gcm"
    put ceiling.openssl_sha256_gbps "$(openssl speed -evp sha256 -seconds 2 -bytes 16384 2>/dev/null |
        awk '/^sha256/ { sub("k", "", $2); printf "%.3f", $2 / 1e6 }')"
    put ceiling.openssl_aes256gcm_gbps "$(openssl speed -evp aes-256-gcm -seconds 2 -bytes 16384 2>/dev/null |
        awk '/^AES-256-GCM/ { sub("k", "", $2); printf "%.3f", $2 / 1e6 }')"
    log "ceiling: loopback TLS via a separate nginx serving static files"
    make_certs "$c/certs"
    mkdir -p "$c/www"
    ln -s "$D/mono_0" "$c/www/blob"
    cp "$D/manifest.json" "$c/www/manifest.json"
    local port
    port=$(free_port)
    nginx_conf "$c" "$port" "        root $c/www;
        location = /sink { client_max_body_size 0; return 204; }"
    start_nginx "$c"
    CA=$c/certs/ca.crt BASE=https://127.0.0.1:$port
    wait_ready "$BASE/manifest.json" --cacert "$CA"
    times=()
    for ((i = 0; i < DL_REPEAT; i++)); do times+=("$(download "$BASE/blob" "$BIG")"); done
    put ceiling.tls_download_gbps "$(gbps "$BIG" "$(median "${times[@]}")")"
    local got
    times=()
    for ((i = 0; i < DL_REPEAT; i++)); do
        t0=$(now)
        got=$(curl -sS --http1.1 --cacert "$CA" -H 'Expect:' -X POST -T "$D/mono_0" -o /dev/null \
            -w '%{http_code} %{size_upload}' "$BASE/sink") || die "TLS upload ceiling: curl failed"
        times+=("$(since "$t0")")
        [[ $got == "204 $BIG" ]] || die "TLS upload ceiling: got '$got', want '204 $BIG'"
    done
    put ceiling.tls_upload_gbps "$(gbps "$BIG" "$(median "${times[@]}")")"
    run_wrk ceiling.static_small "$BASE/manifest.json"
    stop_all
}

# ---------------------------------------------------------------- the two systems
# start_distribution / start_imgflow DIR: in lib.sh (shared with rss.sh).

# bench_system NAME: every measurement against one running system.
bench_system() {
    local name=$1 S=$T/$1 D=$T/data t0 i
    log "== $name: starting"
    phase idle
    "start_$name" "$S"
    # cpu:bench = this whole benchmark (servers, curl, wrk): the rest of the machine's CPU time per phase
    # is what other jobs took from it.
    spawn "$S.rsspoll.log" python3 "$HERE/rsspoll.py" "$PHASE" "$S.rss.env" 0.05 "${GROUPS_ARGS[@]}" "cpu:bench=$$"
    local poller=$SPAWNED

    req GET "$BASE/v2/" 200
    [[ $(hdr docker-distribution-api-version) == registry/2.0 ]] || log "WARN: $name: no Docker-Distribution-API-Version"
    put "$name.tls" "$(curl -sv --http1.1 --cacert "$CA" -o /dev/null "$BASE/v2/" 2>&1 |
        sed -n 's/^\* SSL connection using //p' | head -1)"
    put "$name.alpn_default" "$(curl -sv --cacert "$CA" -o /dev/null "$BASE/v2/" 2>&1 |
        sed -n 's/^\* ALPN[:,] server accepted \(to use \)*//p' | head -1)"
    put "$name.cert" "$(openssl x509 -in "$CA" -noout -text | sed -n 's/^ *Public Key Algorithm: //p' | head -1)"

    log "$name: pushing a small image (config + 4 KiB layer + OCI manifest)"
    upload_mono bench "$D/config.json" "$DIG_CONFIG"
    upload_mono bench "$D/layer" "$DIG_LAYER"
    # wrk 4.1 cannot parse HEAD responses that announce a body (wg/wrk#198): the HEAD rate is measured
    # on a zero-length blob, whose HEAD answer carries Content-Length: 0.
    upload_mono bench "$D/empty" "$DIG_EMPTY"
    check_blob bench "$DIG_EMPTY" 0
    req PUT "$BASE/v2/bench/manifests/v1" 201 -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$D/manifest.json"
    req GET "$BASE/v2/bench/manifests/v1" 200 -H 'Accept: application/vnd.oci.image.manifest.v1+json'
    cmp -s "$RQ.b" "$D/manifest.json" || die "$name: manifest GET returned different bytes"
    [[ $(hdr docker-content-digest) == "$DIG_MANIFEST" ]] || die "$name: manifest Docker-Content-Digest differs"

    # Rounds of dd (the disk's own rate, right now), monolithic upload, chunked upload: the VM's
    # disk speed drifts, so each upload is compared with a dd taken a few seconds before it.
    local r disk=() direct=() mono=() chunked=() times=()
    for ((r = 0; r < ROUNDS; r++)); do
        log "$name: round $((r + 1))/$ROUNDS: dd (buffered, O_DIRECT), monolithic upload of $SIZE_MIB MiB, chunked upload ($PAR_N x $CHUNK_MIB MiB PATCHes)"
        disk+=("$(gbps "$BIG" "$(disk_write "$S/dd")")")
        direct+=("$(gbps "$BIG" "$(disk_write "$S/dd" direct)")")

        settle
        phase upload_mono
        t0=$(now)
        upload_mono big "$D/mono_$r" "${MONO_DIG[r]}"
        mono+=("$(gbps "$BIG" "$(since "$t0")")")
        phase idle
        if ((r == 0)); then
            t0=$(now)
            sync
            put "$name.sync_after_upload_s" "$(since "$t0")"
        fi
        check_blob big "${MONO_DIG[r]}" "$BIG"

        settle
        phase upload_chunked
        t0=$(now)
        # shellcheck disable=SC2046 # file names without spaces
        upload_chunked big "${CHUNKED_DIG[r]}" $(chunk_files "$r")
        chunked+=("$(gbps "$BIG" "$(since "$t0")")")
        phase idle
        if ((r == ROUNDS - 1)); then
            # What a Swarm node does right after a push: pull the layer just acknowledged.
            phase download_after_upload
            put "$name.download_after_upload_s" "$(download "$BASE/v2/big/blobs/${CHUNKED_DIG[r]}" "$BIG")"
            phase idle
        fi
        check_blob big "${CHUNKED_DIG[r]}" "$BIG"
    done
    put "$name.disk_gbps" "$(median "${disk[@]}")"
    put "$name.disk_runs_gbps" "${disk[*]}"
    put "$name.disk_direct_gbps" "$(median "${direct[@]}")"
    put "$name.disk_direct_runs_gbps" "${direct[*]}"
    put "$name.upload_mono_gbps" "$(median "${mono[@]}")"
    put "$name.upload_mono_runs_gbps" "${mono[*]}"
    put "$name.upload_chunked_gbps" "$(median "${chunked[@]}")"
    put "$name.upload_chunked_runs_gbps" "${chunked[*]}"

    log "$name: download of $SIZE_MIB MiB x $DL_REPEAT"
    sync
    phase download
    for ((i = 0; i < DL_REPEAT; i++)); do times+=("$(download "$BASE/v2/big/blobs/${MONO_DIG[0]}" "$BIG")"); done
    put "$name.download_gbps" "$(gbps "$BIG" "$(median "${times[@]}")")"
    put "$name.download_runs_s" "${times[*]}"
    phase idle
    log "$name: verifying downloaded bytes of the first round's blobs (not timed)"
    for i in "${MONO_DIG[0]}" "${CHUNKED_DIG[0]}"; do
        [[ "sha256:$(curl -sS --http1.1 --cacert "$CA" "$BASE/v2/big/blobs/$i" | openssl dgst -sha256 -r | cut -d' ' -f1)" == "$i" ]] ||
            die "$name: downloaded blob $i has a different digest"
    done

    log "$name: $PAR_N parallel uploads of $PAR_MIB MiB"
    settle
    phase upload_parallel
    t0=$(now)
    local pids=() fail=0
    for ((i = 0; i < PAR_N; i++)); do
        (RQ=$T/par$i; upload_mono par "$D/par_$i" "${PAR_DIG[i]}") &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || fail=1; done
    ((fail == 0)) || die "$name: a parallel upload failed"
    put "$name.upload_parallel_gbps" "$(gbps $((PAR_N * PAR_BYTES)) "$(since "$t0")")"
    phase idle
    sync
    for ((i = 0; i < PAR_N; i++)); do check_blob par "${PAR_DIG[i]}" "$PAR_BYTES"; done

    log "$name: manifest GET rate (${WRK_DUR}s, $WRK_CONNS connections)"
    phase wrk_manifest
    run_wrk "$name.manifest_get" "$BASE/v2/bench/manifests/v1" -H 'Accept: application/vnd.oci.image.manifest.v1+json'
    log "$name: blob HEAD rate (${WRK_DUR}s, $WRK_CONNS connections)"
    phase wrk_head
    run_wrk "$name.blob_head" "$BASE/v2/bench/blobs/$DIG_EMPTY" -s "$T/head.lua"
    phase idle

    stop_pid "$poller"
    [[ -s $S.rss.env ]] || die "$name: rsspoll.py wrote no results: $(tail -5 "$S.rsspoll.log")"
    sed "s/^/$name./" "$S.rss.env" >>"$RES"
    stop_all
    put "$name.ok" 1
    log "== $name: done"
}

# ---------------------------------------------------------------- main
if ((WAIT_IDLE > 0)); then
    # Idle = at most 10% busy over 5 s, twice in a row 20 s apart.
    deadline=$((SECONDS + 60 * WAIT_IDLE)) quiet=0
    while ((quiet < 2 && SECONDS < deadline)); do
        busy=$(cpu_busy 5)
        if ((busy <= 10)); then quiet=$((quiet + 1)); else quiet=0; fi
        ((quiet >= 2)) || { log "machine is ${busy}% busy; waiting for it to be idle (up to $WAIT_IDLE min)"; sleep 20; }
    done
fi
busy=$(cpu_busy 3)
((busy <= 10)) || log "WARNING: the machine is already ${busy}% busy: figures will be noisy"
put busy_start "$busy%"
put mode "$MODE"
put size_mib "$SIZE_MIB"
put chunk_mib "$CHUNK_MIB"
put par "$PAR_N x $PAR_MIB MiB"
put rest_s "$REST"
put rounds "$ROUNDS"
put wrk "wrk -t2 -c$WRK_CONNS -d${WRK_DUR}s --latency"
put date "$(date -u '+%Y-%m-%d %H:%M UTC')"
put ncpu "$(nproc)"
put cpu "$(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
put kernel "$(uname -r)"
put mem "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
put fs "$(df --output=source,fstype "$T" | tail -1 | tr -s ' ')"
put load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
put tools "curl $(curl --version | head -1 | cut -d' ' -f2), $(openssl version | cut -d' ' -f1-2), wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2)"

gen_data
cpu_snapshot
ceilings
record_other_cpu ceiling
status=0
for sys in distribution imgflow; do
    [[ -z $ONLY || $ONLY == "$sys" ]] || continue
    # In the background, so that a signal to this script interrupts the wait and runs cleanup at once.
    rm -f "$T/last_error"
    cpu_snapshot
    (
        set -eE
        trap 'die "line $LINENO: \"$BASH_COMMAND\" failed"' ERR
        bench_system "$sys"
    ) &
    rc=0
    wait $! || rc=$?
    stop_all
    record_other_cpu "$sys"
    if ((rc != 0)); then
        put "$sys.error" "benchmark failed (exit $rc): $(tr '\n' ' ' <"$T/last_error" 2>/dev/null)"
        status=1
    fi
done
put load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
put busy_end "$(cpu_busy 3)%"
python3 "$HERE/report.py" "$RES" >"$OUT"
cat "$OUT"
log "report written to $OUT"
exit "$status"
