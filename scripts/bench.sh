#!/usr/bin/env bash
# Every benchmark of Assay, each printing its baseline, Assay's figure and the ratio measured in
# the same run (no timed assertions anywhere). Release builds; run on a quiet machine.
#
#   scripts/bench.sh            # all of them
#   scripts/bench.sh cli        # one group: spec | engine | store | cli | server | dashboard | shards
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
