#!/usr/bin/env bash
# send.sh — send a workflow run's events to Exosphere Alerts over HTTP
# (POST /v1/events, the CloudEvents HTTP binding), with curl only.
# Copy it and replace the event bodies with your engine's.
#
#   EXO_URL=https://alerts.example.com EXO_INGEST_KEY=<key> EXO_TENANT=acme \
#     ./send.sh binary|structured|batch <run-id> [workflow-name]
#
# Each call sends one failed run: its workflow.run.started event, then its
# workflow.run.failed event, in the mode asked:
#   binary      attributes in ce-* headers, the data object as the body
#   structured  the whole event as the body (application/cloudevents+json)
#   batch       both events in one request (application/cloudevents-batch+json)
#
# The key is an API key of role ingest (exo-alerts apikey create --tenant T
# --role ingest). Event ids are derived from the run, its attempt and the
# event type, so sending again (a retry after a timeout) alerts once: the
# processor deduplicates on the id. A 429 or 503 is retried after the
# Retry-After the server asked for; any other answer but 202 fails the
# script with the server's reasons (per event, with the JSON path at fault).
set -euo pipefail

: "${EXO_URL:?set EXO_URL, e.g. http://127.0.0.1:8080}"
: "${EXO_INGEST_KEY:?set EXO_INGEST_KEY to an API key of role ingest}"
: "${EXO_TENANT:?set EXO_TENANT to the tenant of the key}"
mode="${1:?usage: send.sh binary|structured|batch <run-id> [workflow-name]}"
run="${2:?usage: send.sh binary|structured|batch <run-id> [workflow-name]}"
workflow=${3:-nightly-etl}
attempt=1
source_uri="my-engine/curl"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# post BODY CONTENT-TYPE [HEADER...]: POST to /v1/events until it is
# answered 202, retrying 429 and 503 after their Retry-After.
post() {
  local body=$1 ctype=$2
  shift 2
  local tries=0 out headers code wait
  out=$(mktemp) headers=$(mktemp)
  trap 'rm -f "$out" "$headers"' RETURN
  while :; do
    code=$(curl -sS -o "$out" -D "$headers" -w '%{http_code}' -X POST "$EXO_URL/v1/events" \
      -H "Authorization: Bearer $EXO_INGEST_KEY" -H "Content-Type: $ctype" "$@" --data-binary "$body")
    case $code in
    202) return 0 ;;
    429 | 503)
      tries=$((tries + 1))
      if [ "$tries" -ge 5 ]; then
        echo "send.sh: still $code after $tries tries: $(cat "$out")" >&2
        return 1
      fi
      wait=$(tr -d '\r' <"$headers" | awk 'tolower($1) == "retry-after:" { print $2 }')
      sleep "${wait:-1}"
      ;;
    *)
      # 207: some events refused, 422: all, 400/413: the request; the
      # body says why, per event (index, id, reason, paths).
      echo "send.sh: HTTP $code: $(cat "$out")" >&2
      return 1
      ;;
    esac
  done
}

# The data objects (schemas/workflow-event.schema.json).
started_data='{"workflow":{"id":"wf_'"$workflow"'","name":"'"$workflow"'"},"run":{"id":"'"$run"'","attempt":'"$attempt"',"status":"running","started_at":"'"$now"'"}}'
failed_data='{"workflow":{"id":"wf_'"$workflow"'","name":"'"$workflow"'"},"run":{"id":"'"$run"'","attempt":'"$attempt"',"status":"failed","started_at":"'"$now"'","finished_at":"'"$now"'"},"error":{"code":"NODE_ERRORED","message":"load: connection reset by peer","node":"load"},"labels":{"env":"prod"}}'

# event TYPE DATA: the structured-mode event.
event() {
  printf '{"specversion":"1.0","id":"%s","source":"%s","type":"%s","time":"%s","subject":"%s","tenantid":"%s","datacontenttype":"application/json","data":%s}' \
    "$run-$attempt-$1" "$source_uri" "$1" "$now" "$run" "$EXO_TENANT" "$2"
}

case $mode in
binary)
  for t in started failed; do
    data_var="${t}_data"
    post "${!data_var}" application/json \
      -H "ce-specversion: 1.0" -H "ce-id: $run-$attempt-workflow.run.$t" -H "ce-source: $source_uri" \
      -H "ce-type: workflow.run.$t" -H "ce-time: $now" -H "ce-subject: $run" -H "ce-tenantid: $EXO_TENANT"
  done
  ;;
structured)
  post "$(event workflow.run.started "$started_data")" application/cloudevents+json
  post "$(event workflow.run.failed "$failed_data")" application/cloudevents+json
  ;;
batch)
  post "[$(event workflow.run.started "$started_data"),$(event workflow.run.failed "$failed_data")]" application/cloudevents-batch+json
  ;;
*)
  echo "send.sh: unknown mode $mode (binary, structured or batch)" >&2
  exit 2
  ;;
esac
echo "sent run $run ($mode): started, failed"
