#!/usr/bin/env bash
# make test: find (or install) Chromium, start a real PostgreSQL and a real
# Apache Kafka broker, run every Go test against them with the race
# detector, stop them, and exit non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

# The dashboard's browser tests need Chromium: find it, or
# install Debian's chromium package, before starting anything.
if ! chromium="$("$here/chromium.sh")" || [[ -z "$chromium" ]]; then
	echo "test.sh: error: no Chromium for the dashboard's browser tests (see deploy/local/chromium.sh above)" >&2
	exit 1
fi
export CHROME_PATH="$chromium" EXO_CHROMIUM="$chromium"
echo "test.sh: browser tests use $chromium" >&2

# Test topics are throwaway: start from an empty broker, so partitions left by
# earlier runs (a killed test cannot delete its topics) never slow the
# broker's start or the tests. PostgreSQL keeps its migrated template.
"$here/kafka.sh" down --purge
"$here/services.sh" up
stop() { "$here/services.sh" down || true; }
trap stop EXIT

eval "$("$here/services.sh" env)"
export DATABASE_URL KAFKA_BROKERS
# Tests never skip: with the services above set, a missing one fails.
export CI="${CI:-true}"

echo "test.sh: go test -race -shuffle=on -count=1 ./... (DATABASE_URL, KAFKA_BROKERS and EXO_CHROMIUM set)" >&2
go test -race -shuffle=on -count=1 -timeout 20m "$@" ./...

# Nested modules (deployment checks whose dependencies, e.g. Helm or the
# Kubernetes API types, the product's go.mod should not carry): each is
# tested on its own, without the race detector (no concurrency of ours).
while IFS= read -r mod; do
	dir="$(dirname "$mod")"
	echo "test.sh: go test ./... in $dir" >&2
	(cd "$dir" && go test -count=1 -timeout 15m ./...)
done < <(find . -name go.mod -not -path ./go.mod -not -path './bin/*' -not -path '*/node_modules/*' | sort)

# The fault drills, short form (docs/reliability.md), after the tests and not
# beside them: the drill runs its own PostgreSQL and Kafka on private ports
# and state dir, stops them and kills the components it started, and fails
# if an alert goes missing, the processor duplicates one or a component
# exits by itself (every component rides out the outages).
echo "test.sh: exo-drill --short" >&2
go build -o bin/exo-alerts ./cmd/exo-alerts
go build -o bin/exo-drill ./cmd/exo-drill
bin/exo-drill --short --state-dir "${EXO_STATE_DIR:-/tmp/exo-alerts}-drill"
