#!/usr/bin/env bash
# make test: start a real PostgreSQL and a real Apache Kafka broker, run
# every Go test against them with the race detector, stop them, and exit
# non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

"$here/services.sh" up
stop() { "$here/services.sh" down || true; }
trap stop EXIT

eval "$("$here/services.sh" env)"
export DATABASE_URL KAFKA_BROKERS
# Tests never skip: with the services above set, a missing one fails.
export CI="${CI:-true}"

echo "test.sh: go test -race -shuffle=on -count=1 ./... (DATABASE_URL and KAFKA_BROKERS set)" >&2
go test -race -shuffle=on -count=1 -timeout 20m "$@" ./...
