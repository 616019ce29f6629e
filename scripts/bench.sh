#!/usr/bin/env bash
# Every benchmark of Assay, each printing its baseline, Assay's figure and the ratio measured in
# the same run (no timed assertions anywhere). Release builds; run on a quiet machine.
#
#   scripts/bench.sh            # all of them
#   scripts/bench.sh cli        # one group: spec | engine | store | cli | server | dashboard | shards | containers | agents | analysis
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}

run_group() { [[ "$what" == all || "$what" == "$1" ]]; }

if run_group spec; then
    echo "== spec: validate + plan the Testkube corpus"
    cargo bench -p assay-spec --bench corpus
fi
if run_group engine; then
    echo "== engine: step overhead, parallel makespan, log throughput"
    cargo bench -p assay-engine --bench engine
fi
if run_group store; then
    echo "== store: history queries and log ingest (ASSAY_BENCH_EXECUTIONS to change the size)"
    cargo bench -p assay-store --bench history
fi
if run_group cli; then
    echo "== cli: 200 sequential steps through \`assay run\` (compile, engine, SQLite record) vs one bash script"
    cargo build --release -p assay-cli --locked
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    python3 - "$work" <<'PY'
import sys
d = sys.argv[1]
steps = "\n".join('    - run:\n        command: ["true"]' for _ in range(200))
open(f"{d}/steps.yaml", "w").write(
    "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: steps200\n"
    f"spec:\n  steps:\n{steps}\n")
open(f"{d}/steps.sh", "w").write("#!/bin/bash\n" + "/usr/bin/true\n" * 200)
PY
    chmod +x "$work/steps.sh"
    assay=target/release/assay
    "$assay" run "$work/steps.yaml" --data-dir "$work/data" -q >/dev/null 2>&1   # warm up, create the db
    best() { # best of 5, in ms
        local min=999999 s e t
        for _ in 1 2 3 4 5; do
            s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N)
            t=$(( (e - s) / 1000000 )); (( t < min )) && min=$t
        done
        echo "$min"
    }
    base=$(best "$work/steps.sh")
    ours=$(best "$assay" run "$work/steps.yaml" --data-dir "$work/data" -q)
    python3 -c "b,o=$base,$ours; print(f'bash script: {b} ms; assay run: {o} ms; overhead per step: {(o-b)/200:.2f} ms (goal < 2 ms); ratio {o/max(b,1):.2f}x')"
fi
if run_group server; then
    echo "== server: SSE fan-out (200 followers, 10k lines/s), executions list under wrk (100k stored), queue throughput (--max-concurrent 16)"
    if ! command -v wrk >/dev/null; then
        if [[ $(id -u) -eq 0 ]]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
        else
            echo "bench.sh: wrk is missing (apt-get install wrk); the list benchmark will be skipped" >&2
        fi
    fi
    cargo bench -p assay-server --bench api
fi
if run_group dashboard; then
    echo "== dashboard: server time of each page with 100k executions stored (goal p95 < 50 ms)"
    cargo bench -p assay-server --bench dashboard
fi
if run_group shards; then
    echo "== shards: Markdown 3.7's pytest suite (1,081 tests) over 4 workers with glob() shards and balance: durations;"
    echo "   total, lower bound max(longest file, total/4), balanced makespan and ratio, even-split makespan (recorded test durations)"
    out="$PWD/.test-out"
    mkdir -p "$out"
    if [[ ! -x "$out/venv/bin/python" ]]; then
        python3 -m venv "$out/venv"
        "$out/venv/bin/pip" install --quiet --disable-pip-version-check -r crates/assay-reports/tests/requirements.txt
    fi
    req=crates/assay-cli/tests/real_suite_requirements.txt
    if ! cmp -s "$req" "$out/sdist/.requirements" 2>/dev/null; then
        rm -rf "$out/sdist"
        "$out/venv/bin/pip" download --quiet --disable-pip-version-check --no-binary :all: \
            --no-deps --require-hashes -r "$req" -d "$out/sdist"
        cp "$req" "$out/sdist/.requirements"
    fi
    ASSAY_TEST_SDIST=$(find "$out/sdist" -maxdepth 1 -name '*.tar.gz' | head -n 1) \
        ASSAY_TEST_PYTHON="$out/venv/bin/python" \
        cargo nextest run -p assay-cli --locked -E 'test(/^real_suite::/)' --no-capture 2>&1 | grep '^shards:'
fi
if run_group containers; then
    echo "== containers: step overhead of --runtime container vs bare \`podman run --rm IMAGE true\`, parallel makespan"
    # Podman (runc, no default ulimits) and the test images, as scripts/test.sh sets them up;
    # ASSAY_BENCH_DOCKER_HOST names a running engine instead. ASSAY_BIN: another assay binary.
    work=$(mktemp -d)
    podman_pid=""
    trap '[[ -n $podman_pid ]] && kill $podman_pid 2>/dev/null; rm -rf "$work"' EXIT
    export CONTAINERS_CONF=${CONTAINERS_CONF:-$work/containers.conf}
    [[ -f $CONTAINERS_CONF ]] || printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' >"$CONTAINERS_CONF"
    scripts/container-images.sh
    host=${ASSAY_BENCH_DOCKER_HOST:-}
    if [[ -z $host ]]; then
        (cd "$work" && exec podman system service --time=0 "unix://$work/podman.sock") >"$work/podman.log" 2>&1 &
        podman_pid=$!
        for _ in $(seq 100); do [[ -S $work/podman.sock ]] && break; sleep 0.1; done
        host="unix://$work/podman.sock"
    fi
    assay=${ASSAY_BIN:-target/release/assay}
    [[ -n ${ASSAY_BIN:-} ]] || cargo build --release -p assay-cli --locked
    n=20 workers=4 image=localhost/assay-tiny:1
    python3 - "$work" "$n" "$workers" "$image" <<'PY'
import sys
d, n, w, image = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
head = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: {}\nspec:\n"
steps = "\n".join(f'  - run:\n      image: {image}\n      command: ["true"]' for _ in range(n))
open(f"{d}/steps.yaml", "w").write(head.format("container-steps") + f"  steps:\n{steps}\n")
open(f"{d}/one.yaml", "w").write(head.format("one-sleep") +
    f"  steps:\n  - run:\n      image: {image}\n      command: [sleep, '2']\n")
open(f"{d}/workers.yaml", "w").write(head.format("workers") +
    f"  steps:\n  - parallel:\n      count: {w}\n      run:\n        image: {image}\n        command: [sleep, '2']\n")
PY
    now() { date +%s.%N; }
    secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
    t0=$(now)
    for _ in $(seq "$n"); do podman run --rm "$image" true; done
    t1=$(now)
    DOCKER_HOST=$host "$assay" run "$work/steps.yaml" --runtime container -q --data-dir "$work/data" >/dev/null 2>&1
    t2=$(now)
    bare=$(secs "$t0" "$t1") ours=$(secs "$t1" "$t2")
    python3 -c "b, o, n = $bare, $ours, $n; print(f'{n} steps: podman run --rm {b:.2f}s ({b/n*1000:.0f} ms/step), assay --runtime container {o:.2f}s ({o/n*1000:.0f} ms/step), ratio {o/b:.2f}')"
    t0=$(now)
    DOCKER_HOST=$host "$assay" run "$work/one.yaml" --runtime container -q --data-dir "$work/data" >/dev/null 2>&1
    t1=$(now)
    DOCKER_HOST=$host "$assay" run "$work/workers.yaml" --runtime container -q --data-dir "$work/data" >/dev/null 2>&1
    t2=$(now)
    one=$(secs "$t0" "$t1") par=$(secs "$t1" "$t2")
    python3 -c "a, p, w = $one, $par, $workers; print(f'parallel makespan: one container sleeping 2s {a:.2f}s, {w} workers sleeping 2s each {p:.2f}s (ratio {p/a:.2f}; serial would be about {w*a:.2f}s)')"
fi
if run_group agents; then
    echo "== agents: executions/s dispatched to 3 agents (--agents-only) vs the server's embedded runner (--max-concurrent 3)"
    # ASSAY_BIN: a built binary to measure instead of a fresh release build.
    assay=${ASSAY_BIN:-target/release/assay}
    [[ -n "${ASSAY_BIN:-}" ]] || cargo build --release -p assay-cli --locked
    n=${ASSAY_BENCH_RUNS:-60}
    work=$(mktemp -d)
    pids=()
    cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
    trap cleanup EXIT
    printf 'apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: quick\nspec:\n  steps:\n  - shell: echo hi\n' > "$work/quick.yaml"
    free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
    # Runs $n executions of `quick` on a server started with "$@"; sets `took` to the seconds until
    # all ended (no subshell: the EXIT trap must stay the script's).
    measure() {
        local data port token t0 t1 left
        data=$(mktemp -d "$work/data.XXXX"); port=$(free_port)
        "$assay" server --data-dir "$data" --listen "127.0.0.1:$port" --max-concurrent 3 "$@" 2>"$data/server.log" &
        pids+=($!)
        until [[ -s "$data/admin.token" ]] && curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.1; done
        token=$(cat "$data/admin.token")
        curl -sf -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/yaml' \
            --data-binary @"$work/quick.yaml" "http://127.0.0.1:$port/v1/test-workflows" >/dev/null
        if [[ " $* " == *" --agents-only "* ]]; then
            "$assay" token create --data-dir "$data" --name agents --role runner > "$data/runner.token"
            for i in 1 2 3; do
                "$assay" agent --server "http://127.0.0.1:$port" --token-file "$data/runner.token" --name "a$i" 2>"$data/a$i.log" &
                pids+=($!)
            done
            until [[ $(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/agents" | { grep -o '"connected":true' || true; } | wc -l) -eq 3 ]]; do sleep 0.1; done
        fi
        t0=$(date +%s.%N)
        for _ in $(seq "$n"); do
            curl -sf -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{}' \
                "http://127.0.0.1:$port/v1/test-workflows/quick/executions" >/dev/null
        done
        while :; do
            left=$(curl -sf -H "Authorization: Bearer $token" \
                "http://127.0.0.1:$port/v1/test-workflow-executions?status=queued,running&pageSize=1000" | { grep -o '"id"' || true; } | wc -l)
            [[ "$left" -eq 0 ]] && break
            sleep 0.05
        done
        t1=$(date +%s.%N)
        took=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
    }
    measure; embedded=$took
    measure --agents-only; agents=$took
    python3 -c "n, e, a = $n, $embedded, $agents; print(f'{n} executions: embedded runner {n/e:.1f}/s ({e:.2f}s), 3 agents {n/a:.1f}/s ({a:.2f}s), ratio agents/embedded {(n/a)/(n/e):.2f}')"

    echo "== agents: reconnect after a server restart (SIGKILL, same SQLite data dir) vs fresh agents joining a fresh server"
    # All measured from the moment the server answers /health: until the 3 agents have claimed
    # from it (lastSeenAt after that moment), and until an execution queued at that moment passed;
    # the restart at once, and after the server was down ASSAY_BENCH_DOWN seconds (10).
    python3 - "$assay" "$work" "${ASSAY_BENCH_ROUNDS:-3}" <<'PY'
import json, os, signal, socket, statistics, subprocess, sys, tempfile, time, urllib.request
from datetime import datetime
assay, work, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
quick = open(f"{work}/quick.yaml").read()
procs = []

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port

def api(port, token, method, path, body=None, ctype="application/json"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=body.encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read().decode()
        return json.loads(text) if text else None

def server(data, port, *extra):
    log = open(f"{data}/server.log", "a")
    p = subprocess.Popen([assay, "server", "--data-dir", data, "--listen", f"127.0.0.1:{port}", *extra],
                         stdout=subprocess.DEVNULL, stderr=log)
    procs.append(p)
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            return p, time.time()
        except OSError:
            time.sleep(0.02)

def agent(data, port, i):
    log = open(f"{data}/a{i}.log", "a")
    p = subprocess.Popen([assay, "agent", "--server", f"http://127.0.0.1:{port}", "--token-file",
                          f"{data}/runner.token", "--name", f"a{i}"], stdout=subprocess.DEVNULL, stderr=log)
    procs.append(p)

def wait(port, token, since):
    """Seconds from `since` until the 3 agents claimed from this server, and until a run queued now passed."""
    run = api(port, token, "POST", "/v1/test-workflows/quick/executions", "{}")
    connected = done = None
    while connected is None or done is None:
        now = time.time()
        if connected is None:
            seen = [datetime.fromisoformat(a["lastSeenAt"].replace("Z", "+00:00")).timestamp()
                    for a in api(port, token, "GET", "/v1/agents")]
            if sum(1 for t in seen if t >= since) == 3:
                connected = now - since
        if done is None and api(port, token, "GET", f"/v1/test-workflow-executions/{run['id']}")["result"]["status"] == "passed":
            done = now - since
        time.sleep(0.02)
    return connected, done

fresh, again, later = [], [], []
down = float(os.environ.get("ASSAY_BENCH_DOWN", "10"))
try:
    for _ in range(rounds):
        data = tempfile.mkdtemp(dir=work); port = free_port()
        tokens = {}
        for name, role in (("admin", "admin"), ("agents", "runner")):
            tokens[role] = subprocess.run([assay, "token", "create", "--data-dir", data, "--name", name, "--role", role],
                                          capture_output=True, text=True, check=True).stdout.strip()
        open(f"{data}/runner.token", "w").write(tokens["runner"] + "\n")
        token = tokens["admin"]
        # The server's first start; --agents-only: the run must go to an agent, not its own runner.
        p, ready = server(data, port, "--agents-only")
        api(port, token, "POST", "/v1/test-workflows", quick, "application/yaml")
        for i in (1, 2, 3):
            agent(data, port, i)
        fresh.append(wait(port, token, ready))
        time.sleep(1)  # the agents settle into their long polls
        p.send_signal(signal.SIGKILL); p.wait()
        p, ready = server(data, port, "--agents-only")
        again.append(wait(port, token, ready))
        # Down for a while (an upgrade, a node move): the agents' claim backoff has grown.
        time.sleep(1)
        p.send_signal(signal.SIGKILL); p.wait()
        time.sleep(down)
        p, ready = server(data, port, "--agents-only")
        later.append(wait(port, token, ready))
        p.send_signal(signal.SIGKILL); p.wait()
        for q in procs:
            q.kill()
        procs.clear()
finally:
    for q in procs:
        q.kill()
med = lambda xs, i: statistics.median(x[i] for x in xs)
fc, fd, ac, ad = med(fresh, 0), med(fresh, 1), med(again, 0), med(again, 1)
lc, ld = med(later, 0), med(later, 1)
print(f"3 agents connected: fresh {fc:.2f}s, after a restart {ac:.2f}s (ratio {ac/fc:.2f}), after {down:.0f}s down {lc:.2f}s (ratio {lc/fc:.2f}); "
      f"a queued run passed: fresh {fd:.2f}s, after a restart {ad:.2f}s (ratio {ad/fd:.2f}), after {down:.0f}s down {ld:.2f}s (ratio {ld/fd:.2f}); median of {rounds}")
PY
fi
if run_group analysis; then
    echo "== analysis: the classifier on the labelled corpus of real failures (goal 100%), and assay explain's analysis on 1M executions vs reading the execution"
    ASSAY_TEST_PYTHON=${ASSAY_TEST_PYTHON:-$PWD/.test-out/venv/bin/python} \
        cargo nextest run -p assay-cli --locked -E 'test(/corpus_of_real_failures/)' --no-capture 2>&1 |
        grep -E '^corpus'
    cargo bench -p assay-service --bench analysis
fi
