#!/usr/bin/env bash
# The one command that runs every test of Assay on a fresh Debian machine (root or not).
# It installs what the tests need when it is missing, starts a throwaway PostgreSQL, runs
# formatting, lints and the whole test suite, and stops what it started.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -E 'package(assay-spec)'   # extra arguments go to cargo nextest
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out="$root/.test-out"
mkdir -p "$out"

log() { printf '\n== %s\n' "$*" >&2; }

# --- tools ---------------------------------------------------------------------------------
# Add an `ensure_*` function here for each tool a new kind of test needs, and call it below.
ensure_rust_components() {
    local c missing=()
    cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
    for c in "${missing[@]}"; do
        log "installing $c"
        rustup component add "$c"
    done
}

ensure_nextest() {
    if ! cargo nextest --version >/dev/null 2>&1; then
        log "installing cargo-nextest"
        cargo install --locked cargo-nextest
    fi
}

# git is used by content.git tests; bash runs shell steps; python3 serves HTTP in service tests.
ensure_debian_tools() {
    local missing=()
    command -v git >/dev/null || missing+=(git)
    command -v bash >/dev/null || missing+=(bash)
    command -v python3 >/dev/null || missing+=(python3)
    # kubectl kustomize renders deploy/kubernetes (crates/assay-cli/tests/deploy.rs)
    command -v kubectl >/dev/null || missing+=(kubernetes-client)
    # a real ssh server for git triggers over ssh (crates/assay-cli/tests/git_credentials.rs)
    [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
    command -v ssh-keygen >/dev/null || missing+=(openssh-client)
    if [[ ${#missing[@]} -gt 0 ]]; then
        if [[ $(id -u) -ne 0 ]]; then
            echo "test.sh: missing ${missing[*]}; install them (needs root)" >&2
            exit 1
        fi
        log "installing ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
}

# --- disk ----------------------------------------------------------------------------------
# A cold run needs about 12 GiB: the debug target folder (~8 GiB), the static build (~2.5 GiB),
# PostgreSQL, the browser and the tests' temporary folders. When a disk fills mid-run the tests
# fail with ENOSPC far from the cause (once in the fake kubelet's /tmp folders), so say so first.
report_disk() {
    local dir avail_kib
    for dir in "${CARGO_TARGET_DIR:-$root/target}" "${TMPDIR:-/tmp}"; do
        mkdir -p "$dir"
        avail_kib=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
        echo "test.sh: $((avail_kib / 1048576)) GiB free for $dir ($1)" >&2
        if [[ $avail_kib -lt $((4 * 1048576)) ]]; then
            echo "test.sh: warning: less than 4 GiB free for $dir: tests may fail with 'No space left on device'; free some space (an old target folder?) first" >&2
        fi
    done
}

# --- a real browser for the dashboard tests (crates/assay-cli/tests/dashboard.rs) ---------
# Debian's chromium, driven by playwright-core from npm (pinned in
# crates/assay-server/tests/browser/package-lock.json; `npm ci` again when the lock changes).
# ASSAY_TEST_SKIP_BROWSER=1 skips both, and the test.
ensure_chromium() {
    [[ "${ASSAY_TEST_SKIP_BROWSER:-}" == 1 ]] && return 0
    local missing=()
    command -v chromium >/dev/null || missing+=(chromium)
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    if [[ ${#missing[@]} -gt 0 ]]; then
        if [[ $(id -u) -ne 0 ]]; then
            echo "test.sh: missing ${missing[*]}; install them (needs root) or set ASSAY_TEST_SKIP_BROWSER=1" >&2
            exit 1
        fi
        log "installing ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
}

ensure_browser_node_modules() {
    [[ "${ASSAY_TEST_SKIP_BROWSER:-}" == 1 ]] && return 0
    local dir="$root/crates/assay-server/tests/browser"
    if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.assay-installed-lock" 2>/dev/null; then
        log "npm ci in ${dir#"$root"/}"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        cp "$dir/package-lock.json" "$dir/node_modules/.assay-installed-lock"
    fi
}

# --- Python venv for the MCP client tests (assay-mcp) -------------------------------------
# The official MCP client SDK (PyPI `mcp`) in .test-out/venv, rebuilt when
# crates/assay-mcp/tests/requirements.txt changes; crates/assay-cli/tests/mcp.rs uses the
# interpreter named by ASSAY_TEST_PYTHON. The same venv holds moto's S3 server for the store's
# S3 tests (crates/assay-store/tests/requirements.txt, see start_s3), pytest for the JUnit tests
# and schemathesis for the server's OpenAPI test (crates/assay-server/tests/requirements.txt),
# kmock for the fake Kubernetes API server of assay-kube's tests (crates/assay-kube/tests/requirements.txt).
ensure_python_venv() {
    local venv="$out/venv" req="$root/crates/assay-mcp/tests/requirements.txt"
    local s3_req="$root/crates/assay-store/tests/requirements.txt"
    local junit_req="$root/crates/assay-reports/tests/requirements.txt"
    local api_req="$root/crates/assay-server/tests/requirements.txt"
    local kube_req="$root/crates/assay-kube/tests/requirements.txt"
    local all=("$req" "$s3_req" "$junit_req" "$api_req" "$kube_req")
    if ! cat "${all[@]}" | cmp -s - "$venv/.requirements" 2>/dev/null; then
        log "creating $venv (pip install -r ${all[*]#"$root"/})"
        rm -rf "$venv"
        python3 -m venv "$venv"
        local f args=()
        for f in "${all[@]}"; do args+=(-r "$f"); done
        "$venv/bin/pip" install --quiet --disable-pip-version-check "${args[@]}"
        cat "${all[@]}" >"$venv/.requirements"
    fi
    export ASSAY_TEST_PYTHON="$venv/bin/python"
}

# --- a real third-party suite (crates/assay-cli/tests/real_suite.rs) -----------------------
# Markdown 3.7's sdist (its pytest suite, 1,081 tests), pinned by sha256, downloaded once with
# the venv's pip into .test-out/sdist; ASSAY_TEST_SDIST names it (the test says loudly that it
# skipped when it is unset).
ensure_real_suite() {
    local req="$root/crates/assay-cli/tests/real_suite_requirements.txt" dir="$out/sdist"
    if ! cmp -s "$req" "$dir/.requirements" 2>/dev/null; then
        log "downloading the real suite's sdist (pip download -r ${req#"$root"/})"
        rm -rf "$dir"
        "$out/venv/bin/pip" download --quiet --disable-pip-version-check --no-binary :all: \
            --no-deps --require-hashes -r "$req" -d "$dir"
        cp "$req" "$dir/.requirements"
    fi
    ASSAY_TEST_SDIST=$(find "$dir" -maxdepth 1 -name '*.tar.gz' | head -n 1)
    export ASSAY_TEST_SDIST
}

# --- a container engine for the container runtime's tests (crates/assay-container/tests) ---
# Debian's podman with runc (this kernel kind is on cgroup v1, which crun refuses), a
# containers.conf without default ulimits (the defaults are refused here), test images built from
# Debian packages by scripts/container-images.sh (no registry needed; the debootstrap tarball is
# cached in ~/.cache/assay-test), and `podman system service` serving the Docker Engine API on a
# socket in .test-out, named by ASSAY_TEST_DOCKER_HOST; stopped on exit.
# ASSAY_TEST_SKIP_CONTAINERS=1 skips all of it, and the tests say loudly that they skipped.
podman_pid=""
start_container_engine() {
    [[ "${ASSAY_TEST_SKIP_CONTAINERS:-}" == 1 ]] && return 0
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if [[ ${#missing[@]} -gt 0 ]]; then
        if [[ $(id -u) -ne 0 ]]; then
            echo "test.sh: missing ${missing[*]}; install them (needs root) or set ASSAY_TEST_SKIP_CONTAINERS=1" >&2
            exit 1
        fi
        log "installing ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
    printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' >"$out/containers.conf"
    export CONTAINERS_CONF="$out/containers.conf"
    log "container test images (scripts/container-images.sh)"
    scripts/container-images.sh
    local sock="$out/podman.sock" i
    rm -f "$sock"
    log "starting podman system service at $sock"
    # In .test-out: conmon writes an `oom` file into the service's working directory when a
    # container is killed for memory (the memory-limit test does that), not into the checkout.
    (cd "$out" && exec podman system service --time=0 "unix://$sock") >"$out/podman.log" 2>&1 &
    podman_pid=$!
    for ((i = 0; i < 100; i++)); do
        if [[ -S $sock ]] && python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n"); sys.exit(0 if b"OK" in s.recv(4096) else 1)' "$sock" 2>/dev/null; then
            export ASSAY_TEST_DOCKER_HOST="unix://$sock"
            return
        fi
        kill -0 "$podman_pid" 2>/dev/null || break
        sleep 0.2
    done
    echo "test.sh: podman system service did not start; its output ($out/podman.log):" >&2
    cat "$out/podman.log" >&2
    exit 1
}
stop_container_engine() {
    if [[ -n "$podman_pid" ]]; then
        kill "$podman_pid" 2>/dev/null || true
        wait "$podman_pid" 2>/dev/null || true
        podman_pid=""
    fi
}

# --- PostgreSQL (store tests run against SQLite and a real PostgreSQL) --------------------
pg_dir=""
start_postgres() {
    if [[ -n "${ASSAY_TEST_POSTGRES_URL:-}" ]]; then
        log "using PostgreSQL at ASSAY_TEST_POSTGRES_URL"
        return
    fi
    pg_dir=$(mktemp -d /tmp/assay-pg.XXXXXX)
    log "starting PostgreSQL in $pg_dir"
    ASSAY_TEST_POSTGRES_URL=$(scripts/pg.sh start "$pg_dir")
    export ASSAY_TEST_POSTGRES_URL
}
stop_postgres() {
    if [[ -n "$pg_dir" ]]; then
        scripts/pg.sh stop "$pg_dir" >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
}
trap 'stop_postgres; stop_s3; stop_container_engine' EXIT

# --- S3-compatible object storage (assay-store's tests/s3.rs) -----------------------------
# moto's S3 server (`moto_server` from the venv above) on a free loopback port, named by
# ASSAY_TEST_S3_ENDPOINT; it accepts any credentials and anonymous bucket creation. Stopped on
# exit. An endpoint already in ASSAY_TEST_S3_ENDPOINT is used as it is.
s3_pid=""
start_s3() {
    if [[ -n "${ASSAY_TEST_S3_ENDPOINT:-}" ]]; then
        log "using S3 at ASSAY_TEST_S3_ENDPOINT"
        return
    fi
    local port i endpoint
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    endpoint="http://127.0.0.1:$port"
    log "starting moto_server (S3) at $endpoint"
    "$out/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$out/moto.log" 2>&1 &
    s3_pid=$!
    for ((i = 0; i < 100; i++)); do
        if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
            "$endpoint/" >/dev/null 2>&1; then
            export ASSAY_TEST_S3_ENDPOINT="$endpoint"
            return
        fi
        if ! kill -0 "$s3_pid" 2>/dev/null; then
            break
        fi
        sleep 0.2
    done
    echo "test.sh: moto_server did not start at $endpoint; its output ($out/moto.log):" >&2
    cat "$out/moto.log" >&2
    exit 1
}
stop_s3() {
    if [[ -n "$s3_pid" ]]; then
        kill "$s3_pid" 2>/dev/null || true
        wait "$s3_pid" 2>/dev/null || true
        s3_pid=""
    fi
}

# --- the static binary (the Kubernetes runtime copies it into workflow images) ------------
# Built as the README and deploy/Containerfile say (glibc, static-pie; debug here), into the
# same target folder: with --target, RUSTFLAGS reaches only the target's artifacts, so the
# host build is not invalidated. crates/assay-cli/tests/pod_static.rs runs it in busybox.
build_static_assay() {
    local triple target_dir
    triple=$(rustc -vV | sed -n 's/^host: //p')
    target_dir=${CARGO_TARGET_DIR:-$root/target}
    log "static assay for $triple (RUSTFLAGS=-C target-feature=+crt-static)"
    RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --locked --target "$triple" -p assay-cli
    export ASSAY_TEST_STATIC_ASSAY="$target_dir/$triple/debug/assay"
}

# --- test data -----------------------------------------------------------------------------
# The Testkube conformance corpus lives in ../shared beside the repository (CI clones it there).
check_corpus() {
    local corpus="$root/../shared/conformance/testkube"
    if [[ ! -f "$corpus/SOURCES.tsv" ]]; then
        echo "test.sh: conformance corpus not found at $corpus" >&2
        exit 1
    fi
}

# New insta snapshots fail the run (INSTA_UPDATE=no, CI=true); this also catches snapshot files
# that exist on disk but were never committed, and leftovers of `cargo insta` reviews.
check_snapshots_committed() {
    git -C "$root" rev-parse --git-dir >/dev/null 2>&1 || return 0
    local stray
    stray=$(git -C "$root" status --porcelain --untracked-files=all -- '*.snap' '*.snap.new' '*.pending-snap')
    if [[ -n "$stray" ]]; then
        echo "test.sh: snapshot files not committed (review them with cargo insta, then commit):" >&2
        echo "$stray" >&2
        exit 1
    fi
}

# --- checks --------------------------------------------------------------------------------
ensure_rust_components
ensure_nextest
ensure_debian_tools
report_disk "before the build"
check_corpus
ensure_python_venv
ensure_real_suite
ensure_chromium
ensure_browser_node_modules

log "rustfmt"
cargo fmt --all -- --check

log "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

start_postgres
start_s3
start_container_engine
build_static_assay

# New insta snapshots fail instead of being written: they must be reviewed and committed.
export INSTA_UPDATE=no CI=true
# The tests run the CLI on its embedded store: never through a context of the person running them.
export ASSAY_CONFIG="$out/contexts.yaml"
unset ASSAY_CONTEXT
# As root, steps drop to `nobody` by default; the tests' workflows read fixtures from the
# tests' own 0700 temporary folders, so they keep root (the drop itself is tested with the
# variable unset: crates/assay-cli/tests/isolation.rs).
export ASSAY_STEP_USER=current

report_disk "before the tests"
log "tests"
cargo nextest run --workspace --locked --no-fail-fast "$@"

# The README's Security section promises one test per attack: say how many there are.
security=$(cargo nextest list --workspace --locked -E 'test(/(^|::)security_/)' \
    --message-format oneline 2>/dev/null | grep -c . || true)
log "security group: $security tests (named security_*; see README ## Security)"

log "doc tests"
cargo test --doc --workspace --locked

log "snapshots committed"
check_snapshots_committed

log "all tests passed"
