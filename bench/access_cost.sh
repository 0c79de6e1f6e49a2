#!/usr/bin/env bash
# What access control costs on the hottest requests: manifest GET and blob HEAD rates (wrk, 2 threads,
# 64 connections over TLS) of imgflow before access control existed (IMGFLOW_BEFORE_BIN, a binary
# built from an older commit) and of the current binary: anonymous under the default policy, with a
# Bearer token (token mode: what docker sends on every request), and with Basic credentials (what
# curl and skopeo send). One run, variants interleaved round by round; medians reported.
# Not in CI.
#   IMGFLOW_BEFORE_BIN=/path/to/old/imgflow bash bench/access_cost.sh [--secs N] [--rounds N] [--out FILE]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
SECS=10 ROUNDS=3 OUT=$HERE/results-access.md
while (($#)); do
    case $1 in
        --secs) SECS=${2:?}; shift ;;
        --rounds) ROUNDS=${2:?}; shift ;;
        --out) OUT=${2:?}; shift ;;
        -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
AFTER_BIN=${IMGFLOW_BIN:-$REPO/target/release/imgflow}
BEFORE_BIN=${IMGFLOW_BEFORE_BIN:?set IMGFLOW_BEFORE_BIN to an imgflow binary without access control}
WRK_CONNS=64 WRK_DUR=$SECS
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
for tool in curl wrk jq openssl; do command -v "$tool" >/dev/null || die "missing $tool"; done
[[ -x $AFTER_BIN && -x $BEFORE_BIN ]] || die "need both binaries: $AFTER_BIN and $BEFORE_BIN"
bench_begin access
printf 'wrk.method = "HEAD"\n' >"$T/head.lua"

# The image every variant serves: a config blob, an empty blob (wrk cannot parse HEAD answers
# announcing a body, wg/wrk#198) and a manifest naming them.
D=$T/image
mkdir -p "$D"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$D/config.json"
: >"$D/empty"
DIG_CONFIG=$(digest "$D/config.json") DIG_EMPTY=$(digest "$D/empty")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":0}]}' \
    "$DIG_CONFIG" "$(size_of "$D/config.json")" "$DIG_EMPTY" >"$D/manifest.json"

# start VARIANT: a fresh server for VARIANT (before | anonymous | token | basic); sets BASE, CA, AUTH
# (the curl/wrk header of the variant's credentials, or none).
start() {
    local v=$1 S=$T/$1 bin=$AFTER_BIN url="" i
    mkdir -p "$S"
    printf '[storage]\nmax_upload_sessions_per_client = 1024\n' >"$S/registry.toml"
    case $v in
        before) bin=$BEFORE_BIN ;;
        anonymous) printf '[audit]\npath = ""\n' >>"$S/registry.toml" ;;
        token | basic)
            cat >>"$S/registry.toml" <<EOF
[audit]
path = ""
[access]
htpasswd = "htpasswd"
[access.token]
enabled = $([[ $v == token ]] && echo true || echo false)
[[access.rule]]
who = ["*"]
allow = ["pull", "push"]
EOF
            echo bench-password | "$AFTER_BIN" user add bench --config "$S/registry.toml" >/dev/null
            ;;
    esac
    "$bin" serve --config "$S/registry.toml" --listen 127.0.0.1:0 --data-dir "$S/data" --certs-dir "$S/certs" \
        >"$S/stdout.log" 2>"$S/stderr.log" 9>&- &
    echo $! >>"$T/pids"
    SERVER_PID=$!
    for ((i = 0; i < 600; i++)); do
        url=$(sed -n 's|^imgflow: listening on \(https://127\.0\.0\.1:[0-9]*\)$|\1|p' "$S/stdout.log" 2>/dev/null | head -1)
        [[ -n $url ]] && break
        sleep 0.1
    done
    [[ -n $url ]] || die "$v: no listening line: $(tail -5 "$S/stderr.log")"
    BASE=$url CA=$S/certs/ca.crt AUTH=()
    sleep 0.3
    case $v in
        basic) AUTH=(-H "Authorization: Basic $(printf 'bench:bench-password' | base64)") ;;
        token)
            local tok
            tok=$(curl -sS --cacert "$CA" -u bench:bench-password \
                "$BASE/token?service=imgflow&scope=repository:bench:pull,push" | jq -r .token)
            [[ -n $tok && $tok != null ]] || die "token: none issued"
            AUTH=(-H "Authorization: Bearer $tok")
            ;;
    esac
    local up
    for f in config.json empty; do
        up=$(curl -sS --cacert "$CA" "${AUTH[@]}" -X POST -o /dev/null -w '%{http_code}' -H 'Content-Type: application/octet-stream' \
            --data-binary "@$D/$f" "$BASE/v2/bench/blobs/uploads/?digest=$(digest "$D/$f")")
        [[ $up == 201 ]] || die "$v: blob push answered $up"
    done
    up=$(curl -sS --cacert "$CA" "${AUTH[@]}" -X PUT -o /dev/null -w '%{http_code}' \
        -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$D/manifest.json" "$BASE/v2/bench/manifests/v1")
    [[ $up == 201 ]] || die "$v: manifest push answered $up"
}

VARIANTS=(before anonymous token basic)
for ((r = 1; r <= ROUNDS; r++)); do
    for v in "${VARIANTS[@]}"; do
        log "round $r/$ROUNDS: $v"
        start "$v"
        run_wrk "$v.$r.manifest_get" "$BASE/v2/bench/manifests/v1" "${AUTH[@]}" \
            -H 'Accept: application/vnd.oci.image.manifest.v1+json'
        run_wrk "$v.$r.blob_head" "$BASE/v2/bench/blobs/$DIG_EMPTY" "${AUTH[@]}" -s "$T/head.lua"
        for k in manifest_get blob_head; do
            n=$(sed -n "s/^$v\.$r\.$k\.non2xx=//p" "$RES")
            [[ -z $n ]] || die "$v: $n answers of $k were not 2xx"
        done
        stop_pid "$SERVER_PID"
    done
done

get() { sed -n "s/^$1=//p" "$RES"; }
med() {
    local v=$1 k=$2 f=$3 r vals=()
    for ((r = 1; r <= ROUNDS; r++)); do vals+=("$(get "$v.$r.$k.$f")"); done
    median "${vals[@]}"
}
{
    echo "# Cost of access control on manifest GET and blob HEAD ($(date -u '+%Y-%m-%d %H:%M UTC'), $(git -C "$REPO" rev-parse --short HEAD))"
    echo
    echo "wrk, 2 threads, $WRK_CONNS connections, ${SECS} s per measurement over TLS (HTTP/1.1), $ROUNDS rounds with the"
    echo "variants interleaved, medians. $(nproc) CPUs shared by server and wrk. Before: \`$("$BEFORE_BIN" --version)\` built"
    echo "without access control. After: this commit, with the default policy (anonymous from loopback), a Bearer"
    echo "token (token mode), or Basic credentials (remembered after the first bcrypt check)."
    echo
    echo "| variant | manifest GET req/s | p99 ms | blob HEAD req/s | p99 ms | GET vs before |"
    echo "| --- | --- | --- | --- | --- | --- |"
    b=$(med before manifest_get rps)
    for v in "${VARIANTS[@]}"; do
        g=$(med "$v" manifest_get rps)
        echo "| $v | $g | $(med "$v" manifest_get p99_ms) | $(med "$v" blob_head rps) | $(med "$v" blob_head p99_ms) | $(awk -v a="$g" -v b="$b" 'BEGIN { printf "%.2fx", a / b }') |"
    done
} >"$OUT"
cat "$OUT"
log "written to $OUT"
