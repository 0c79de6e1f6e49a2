#!/usr/bin/env bash
# imgflow's full test command (what CI runs through .ci/run):
#   1. install the system tools the integration tests drive (Debian packages),
#   2. rustfmt check, clippy with -D warnings, release build,
#   3. cargo test --workspace --release (unit tests, conformance runs against imgflow and
#      CNCF Distribution, docker and skopeo end-to-end tests).
# Exits non-zero on the first failing step and prints a PASS/FAIL verdict either way.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
START=$SECONDS
CURRENT="setup"

section() {
    CURRENT="$1"
    printf '\n==== [%4ss] %s ====\n' "$((SECONDS - START))" "$1"
}

finish() {
    local rc=$?
    local elapsed=$((SECONDS - START))
    echo
    if [[ $rc -eq 0 ]]; then
        printf '==== imgflow tests: PASS (total %dm%02ds) ====\n' $((elapsed / 60)) $((elapsed % 60))
    else
        printf '==== imgflow tests: FAIL in step "%s" (exit %d, total %dm%02ds) ====\n' \
            "$CURRENT" "$rc" $((elapsed / 60)) $((elapsed % 60))
    fi
    exit "$rc"
}
trap finish EXIT

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "need root to run: $*" >&2
        return 1
    fi
}

# ---------------------------------------------------------------------------------------
section "system packages"
# Debian package -> a command it provides ("-" = check the package status only).
PACKAGES=(
    "docker.io:dockerd"
    "skopeo:skopeo"
    "docker-registry:docker-registry"
    "nginx:nginx"
    "busybox-static:-"
    "curl:curl"
    "jq:jq"
    "wrk:wrk"
    "openssl:openssl"
    "ca-certificates:-"
    "iproute2:ip"
    "procps:ps"
)
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
missing=()
for entry in "${PACKAGES[@]}"; do
    pkg=${entry%%:*}
    cmd=${entry#*:}
    if [[ $cmd != "-" ]] && ! command -v "$cmd" >/dev/null 2>&1; then
        missing+=("$pkg")
    elif [[ $cmd == "-" ]] &&
        ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update
    as_root apt-get install -y --no-install-recommends "${missing[@]}"
else
    echo "all present: ${PACKAGES[*]%%:*}"
fi
for tool in docker dockerd containerd runc skopeo docker-registry curl; do
    command -v "$tool" >/dev/null || { echo "still missing after install: $tool" >&2; exit 1; }
done
echo "docker client: $(docker --version)"
echo "dockerd:       $(dockerd --version)"
echo "skopeo:        $(skopeo --version)"
echo "distribution:  $(docker-registry --version)"

# ---------------------------------------------------------------------------------------
section "rust toolchain"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi
cargo --version
cargo fmt --version
cargo clippy --version

# ---------------------------------------------------------------------------------------
section "cargo fmt --check"
cargo fmt --all -- --check

section "cargo clippy (release, all targets, -D warnings)"
cargo clippy --workspace --all-targets --release -- -D warnings

section "cargo build --release"
cargo build --workspace --release

# ---------------------------------------------------------------------------------------
section "cargo test --release"
# Output goes straight to the console; CI reads cargo test's closing lines.
# --no-fail-fast runs every test binary so one failure does not hide the others.
cargo test --workspace --release --no-fail-fast 2>&1

CURRENT="done"
