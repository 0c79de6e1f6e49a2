# Helpers for bench/run.sh (sourced, not run): processes, results, HTTP over TLS with curl, wrk,
# certificates and nginx. Uses the globals run.sh sets: T, RES, PHASE, CA, BASE, RQ, WRK_*.
# shellcheck shell=bash

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
    log "ERROR: $*"
    [[ -z ${T:-} ]] || printf '%s\n' "$*" | head -c 600 >"$T/last_error"
    exit 1
}

# Stop one process we started: TERM, then KILL after 10 s.
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
# Stop everything recorded in $T/pids, newest first.
stop_all() {
    local pid
    [[ -f $T/pids ]] || return 0
    for pid in $(tac "$T/pids"); do stop_pid "$pid"; done
    : >"$T/pids"
}
# kill_tree PID: TERM every descendant of PID (not PID itself), deepest first, by process id.
kill_tree() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        kill_tree "$child"
        kill -TERM "$child" 2>/dev/null || true
    done
}
# Start a background process with output to $1 and record its PID (in $SPAWNED).
spawn() {
    local out=$1
    shift
    "$@" >"$out" 2>&1 9>&- & # 9: run.sh's lock, not for the servers to keep
    SPAWNED=$!
    echo "$SPAWNED" >>"$T/pids"
}
put() { printf '%s=%s\n' "$1" "$2" >>"$RES"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
digest() { echo "sha256:$(openssl dgst -sha256 -r "$1" | cut -d' ' -f1)"; }
size_of() { stat -c %s "$1"; }
phase() { echo "$1" >"$PHASE"; }

# ---------------------------------------------------------------- HTTP helpers (curl over TLS)
# req METHOD URL WANT_CODE [curl args]: headers to $RQ.h, body to $RQ.b; dies on another status.
req() {
    local m=$1 u=$2 want=$3 code
    shift 3
    local how=(-X "$m")
    [[ $m == HEAD ]] && how=(-I)
    code=$(curl -sS --http1.1 --cacert "$CA" -H 'Expect:' "${how[@]}" -D "$RQ.h" -o "$RQ.b" \
        -w '%{http_code}' "$@" "$u") || die "curl $m $u failed"
    [[ $code == "$want" ]] || die "$m $u: HTTP $code, wanted $want: $(head -c 400 "$RQ.b" 2>/dev/null)"
}
hdr() { grep -i "^$1:" "$RQ.h" | tail -1 | cut -d' ' -f2- | tr -d '\r'; }
absolute() { if [[ $1 == http* ]]; then echo "$1"; else echo "$BASE$1"; fi; }
with_digest() { if [[ $1 == *\?* ]]; then echo "$1&digest=$2"; else echo "$1?digest=$2"; fi; }

start_upload() {
    req POST "$BASE/v2/$1/blobs/uploads/" 202 -H 'Content-Length: 0'
    LOC=$(absolute "$(hdr location)")
    [[ -n $LOC ]] || die "POST upload: no Location header"
}
# upload_mono REPO FILE DIGEST: POST, then PUT ?digest= with the whole body.
upload_mono() {
    start_upload "$1"
    req PUT "$(with_digest "$LOC" "$3")" 201 -H 'Content-Type: application/octet-stream' -T "$2"
}
# upload_chunked REPO DIGEST CHUNK...: POST, PATCH each chunk with Content-Range, PUT ?digest=.
upload_chunked() {
    local repo=$1 dig=$2 off=0 end c
    shift 2
    start_upload "$repo"
    for c in "$@"; do
        end=$((off + $(size_of "$c") - 1))
        req PATCH "$LOC" 202 -H 'Content-Type: application/octet-stream' -H "Content-Range: $off-$end" -T "$c"
        LOC=$(absolute "$(hdr location)")
        off=$((end + 1))
    done
    req PUT "$(with_digest "$LOC" "$dig")" 201 -H 'Content-Length: 0'
}
# check_blob REPO DIGEST SIZE: HEAD must answer 200 with the digest and length.
check_blob() {
    req HEAD "$BASE/v2/$1/blobs/$2" 200
    [[ $(hdr content-length) == "$3" ]] || die "HEAD $2: Content-Length $(hdr content-length), want $3"
    [[ $(hdr docker-content-digest) == "$2" ]] || die "HEAD $2: Docker-Content-Digest $(hdr docker-content-digest)"
}
# download URL SIZE: GET to /dev/null, prints wall seconds; dies on a short or failed transfer.
download() {
    local t0 got
    t0=$(now)
    got=$(curl -sS --http1.1 --cacert "$CA" -o /dev/null -w '%{http_code} %{size_download}' "$1") ||
        die "GET $1 failed"
    local secs
    secs=$(since "$t0")
    [[ $got == "200 $2" ]] || die "GET $1: got '$got', want '200 $2'"
    echo "$secs"
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
gbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.3f", b / s / 1e9 }'; }

# run_wrk KEY URL [wrk args]: 2 threads, WRK_CONNS connections, records rps, p99 (ms), errors.
run_wrk() {
    local key=$1 url=$2 out="$T/wrk.$1.txt"
    shift 2
    wrk -t2 -c"$WRK_CONNS" -d"${WRK_DUR}s" --timeout 5s --latency "$@" "$url" >"$out" 2>&1 ||
        die "wrk $key failed: $(cat "$out")"
    awk -v k="$key" '
        function ms(v) { if (v ~ /us$/) return v * 0.001; if (v ~ /ms$/) return v + 0;
                         if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }
        $1 == "99%" { printf "%s.p99_ms=%.3f\n", k, ms($2) }
        $1 == "50%" { printf "%s.p50_ms=%.3f\n", k, ms($2) }
        /requests in/ { printf "%s.requests=%s\n", k, $1 }
        /^Requests\/sec:/ { printf "%s.rps=%.0f\n", k, $2 }
        /Non-2xx or 3xx/ { printf "%s.non2xx=%s\n", k, $NF }
        /Socket errors/ { gsub(",", ""); printf "%s.sock_errors=%d\n", k, $4 + $6 + $8 + $10 }
    ' "$out" >>"$RES"
    grep -q "^$key.rps=" "$RES" || die "wrk $key: no result: $(cat "$out")"
    grep -q "^$key.requests=0$" "$RES" && die "wrk $key: no request completed: $(cat "$out")"
    return 0
}

# make_certs DIR: ECDSA P-256 dev CA + server cert for localhost/127.0.0.1/::1 (like imgflow's own).
make_certs() {
    local d=$1
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench dev CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1' 'basicConstraints=CA:FALSE' \
        'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth' >"$d/ext.cnf"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
        -extfile "$d/ext.cnf" -out "$d/server.crt" 2>/dev/null
}

# nginx_conf DIR PORT LOCATIONS: a self-contained nginx (own prefix, pid, logs and temp dirs).
nginx_conf() {
    local d=$1 port=$2 locations=$3
    mkdir -p "$d/tmp"
    cat >"$d/nginx.conf" <<EOF
user root;
worker_processes auto;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    include /etc/nginx/mime.types;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port ssl;
        server_name localhost;
        ssl_certificate $d/certs/server.crt;
        ssl_certificate_key $d/certs/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
$locations
    }
}
EOF
}
start_nginx() {
    local d=$1
    spawn "$d/stdout.log" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;'
    # shellcheck disable=SC2034 # read by run.sh
    NGINX_PID=$SPAWNED
}
# wait_ready URL CURL_ARGS...: up to 60 s for HTTP 200.
wait_ready() {
    local url=$1 i
    shift
    for ((i = 0; i < 600; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$@" "$url" || true) == 200 ]] && return 0
        sleep 0.1
    done
    die "$url not ready after 60 s"
}

# cpu_snapshot: SNAP_BUSY = non-idle CPU seconds of the whole machine so far; SNAP_OURS = CPU seconds of
# this shell and its reaped children. Must run in the main shell (not in $(...)) for `times` to count.
cpu_snapshot() {
    times >"$T/times"
    SNAP_BUSY=$(awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat)
    SNAP_OURS=$(awk '{ for (i = 1; i <= NF; i++) { split($i, p, "m"); s += p[1] * 60 + p[2] } }
        END { printf "%.2f", s }' "$T/times")
    SNAP_AT=$(now)
}
# record_other_cpu KEY: CPU time used outside this benchmark's processes since the last cpu_snapshot.
record_other_cpu() {
    local busy0=$SNAP_BUSY ours0=$SNAP_OURS at0=$SNAP_AT
    cpu_snapshot
    put "$1.other_cpu_s" "$(awk -v b="$SNAP_BUSY" -v b0="$busy0" -v o="$SNAP_OURS" -v o0="$ours0" \
        'BEGIN { v = (b - b0) - (o - o0); printf "%.1f", v < 0 ? 0 : v }')"
    put "$1.wall_s" "$(awk -v a="$at0" -v b="$SNAP_AT" 'BEGIN { printf "%.1f", b - a }')"
}
# cpu_busy SECONDS: percent of all CPU time not idle over that window (what else runs on the machine).
cpu_busy() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    sleep "$1"
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    echo "$a $b" | awk '{ busy = $3 - $1; idle = $4 - $2; printf "%.0f", 100 * busy / (busy + idle + 1e-9) }'
}

# ---------------------------------------------------------------- the two systems
# start_distribution DIR / start_imgflow DIR: start one system with its data in DIR; sets CA, BASE and
# GROUPS_ARGS (name=pid of each server process tree, for rsspoll.py). Uses T, REPO, IMGFLOW_BIN.
start_distribution() {
    local S=$1 rport nport
    rport=$(free_port)
    nport=$(free_port)
    mkdir -p "$S/storage" "$S/nginx"
    cat >"$S/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $S/storage
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$rport
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    spawn "$S/registry.log" docker-registry serve "$S/registry.yml"
    REGISTRY_PID=$SPAWNED
    wait_ready "http://127.0.0.1:$rport/v2/"
    make_certs "$S/nginx/certs"
    nginx_conf "$S/nginx" "$nport" "        client_max_body_size 0;
        chunked_transfer_encoding on;
        location /v2/ {
            proxy_pass http://registry_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_read_timeout 900;
            proxy_request_buffering off;
            proxy_buffering off;
        }"
    # The upstream block belongs to http{}, not server{}: insert it before the server block.
    sed -i "s|^    server {|    upstream registry_upstream { server 127.0.0.1:$rport; keepalive 64; }\n    server {|" \
        "$S/nginx/nginx.conf"
    start_nginx "$S/nginx"
    CA=$S/nginx/certs/ca.crt BASE=https://127.0.0.1:$nport
    wait_ready "$BASE/v2/" --cacert "$CA"
    GROUPS_ARGS=("registry=$REGISTRY_PID" "nginx=$NGINX_PID")
    put distribution.version "$(docker-registry --version | awk '{ print $NF }'), nginx $(nginx -v 2>&1 | cut -d/ -f2)"
}

start_imgflow() {
    local S=$1 i url=""
    if [[ ! -x $IMGFLOW_BIN ]]; then
        log "building imgflow (cargo build --release) since $IMGFLOW_BIN is missing"
        (cd "$REPO" && cargo build --release) >"$S.build.log" 2>&1 || die "cargo build --release failed: $(tail -20 "$S.build.log")"
    fi
    mkdir -p "$S"
    # Every benchmark client comes from 127.0.0.1: allow it as many upload sessions as the
    # registry has (as for clients behind one NAT address).
    printf '[storage]\nmax_upload_sessions_per_client = 1024\n' >"$S/registry.toml"
    "$IMGFLOW_BIN" serve --config "$S/registry.toml" --listen 127.0.0.1:0 --data-dir "$S/data" --certs-dir "$S/certs" \
        >"$S/stdout.log" 2>"$S/stderr.log" 9>&- &
    IMGFLOW_PID=$!
    echo "$IMGFLOW_PID" >>"$T/pids"
    for ((i = 0; i < 600; i++)); do
        url=$(sed -n 's|^imgflow: listening on \(https://127\.0\.0\.1:[0-9]*\)$|\1|p' "$S/stdout.log" 2>/dev/null | head -1)
        [[ -n $url ]] && break
        kill -0 "$IMGFLOW_PID" 2>/dev/null || die "imgflow serve exited: $(tail -20 "$S/stderr.log")"
        sleep 0.1
    done
    [[ -n $url ]] || die "imgflow serve printed no listening line in 60 s: $(tail -20 "$S/stderr.log")"
    CA=$S/certs/ca.crt BASE=$url
    wait_ready "$BASE/v2/" --cacert "$CA"
    GROUPS_ARGS=("imgflow=$IMGFLOW_PID")
    put imgflow.version "$("$IMGFLOW_BIN" --version 2>/dev/null || echo unknown) ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no commit'))"
}

# bench_begin NAME: wait for any other benchmark on this machine (one at a time, or they spoil each
# other's figures), then make the run's temp dir T (with RES, PHASE, RQ) and stop every server and
# remove T on exit. Sets globals; must run in the main shell.
bench_begin() {
    exec 9>"${BENCH_TMPDIR:-/tmp}/imgflow-bench.lock"
    flock -n 9 || { log "another benchmark is running; waiting"; flock 9; }
    T=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/imgflow-$1.XXXXXX")
    RES=$T/results.env PHASE=$T/phase RQ=$T/req
    : >"$RES"
    : >"$T/pids"
    trap bench_end EXIT
    trap 'exit 130' INT TERM
}
bench_end() { stop_all; kill_tree $$; rm -rf "$T"; }
