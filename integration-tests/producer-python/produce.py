#!/usr/bin/env python3
"""Send a workflow run's events to Exosphere Alerts, the way an engine would.

A run that started and then failed becomes two CloudEvents 1.0 events,
workflow.run.started and workflow.run.failed, produced to the
workflow-events topic with the record key "<tenant>/<run id>" (one run stays
on one partition, so its events stay in order). The CloudEvents SDK builds
the events and lays them out as Kafka records, in either content mode:

  binary      attributes in ce_* headers, the data object as the value
  structured  the whole event as JSON (application/cloudevents+json)

confluent-kafka sends them with an idempotent producer and acks=all, and the
script exits non-zero unless the broker acknowledged every record.

  python produce.py --brokers localhost:9092 --tenant acme --run-id run_123
  python produce.py --mode structured --run-id run_124
  python produce.py --break      # a failed event without its tenant: refused

Every option also reads an environment variable (see --help). One line of
JSON per acknowledged record goes to standard output.
"""

import argparse
import json
import os
import sys
import uuid
from datetime import datetime, timedelta, timezone

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.v1.event import CloudEvent
from confluent_kafka import Producer

SOURCE = "exosphere/state-manager"  # who emits the events (any URI-reference)
STARTED = "workflow.run.started"
FAILED = "workflow.run.failed"


def parse_args(argv):
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--brokers", default=env("KAFKA_BROKERS", "localhost:9092"),
                   help="bootstrap brokers, host:port[,host:port] (env KAFKA_BROKERS)")
    p.add_argument("--topic", default=env("EXO_EVENTS_TOPIC", "workflow-events"),
                   help="the events topic (env EXO_EVENTS_TOPIC; default workflow-events)")
    p.add_argument("--tenant", default=env("EXO_TENANT", "acme"),
                   help="tenant id: the Exosphere namespace (env EXO_TENANT)")
    p.add_argument("--run-id", default=env("EXO_RUN_ID") or "run_" + uuid.uuid4().hex[:12],
                   help="the run's id (env EXO_RUN_ID; default a new one)")
    p.add_argument("--workflow", default=env("EXO_WORKFLOW", "nightly-etl"),
                   help="the workflow's (graph's) name; its id is derived from it (env EXO_WORKFLOW)")
    p.add_argument("--attempt", type=int, default=int(env("EXO_ATTEMPT", "1")),
                   help="attempt number of the run, 1 for the first try (env EXO_ATTEMPT)")
    p.add_argument("--mode", choices=("binary", "structured"), default=env("EXO_MODE", "binary"),
                   help="Kafka content mode (env EXO_MODE; default binary)")
    p.add_argument("--break", dest="broken", action="store_true",
                   help="send only the failed event, without its tenantid: the processor "
                        "refuses it (workflow-events.invalid) and no rule sees it")
    return p.parse_args(argv)


def rfc3339(t):
    """2026-11-28T10:00:00.123Z: the timestamp form the schema accepts."""
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_events(args, now):
    """The started and failed events of one run (only a broken failed one with --break)."""
    started_at = now - timedelta(seconds=84, milliseconds=211)
    workflow = {"id": "wf_" + args.workflow, "name": args.workflow}

    def event(type_, time, run, **extra):
        attributes = {
            "id": str(uuid.uuid4()),  # unique per source; a redelivery keeps its id
            "source": SOURCE,
            "type": type_,
            "time": time,  # when the run changed state; a datetime, the SDK formats it
            "subject": args.run_id,
            "tenantid": args.tenant,  # extension attribute: whose rules see the event
            "datacontenttype": "application/json",
        }
        if args.broken:
            del attributes["tenantid"]
        data = {"workflow": workflow, "run": run, "labels": {"env": "prod", "team": "data"}}
        data.update(extra)
        return CloudEvent(attributes=attributes, data=data)

    failed = event(FAILED, now, {
        "id": args.run_id,
        "attempt": args.attempt,
        "status": "failed",
        "started_at": rfc3339(started_at),
        "finished_at": rfc3339(now),
        "duration_ms": 84211,
    }, error={"code": "NODE_ERRORED", "message": "load: connection reset by peer", "node": "load"})
    if args.broken:
        return [failed]
    started = event(STARTED, started_at, {
        "id": args.run_id,
        "attempt": args.attempt,
        "status": "running",
        "started_at": rfc3339(started_at),
    })
    return [started, failed]


def to_record(event, mode, key):
    """The Kafka record of an event in the chosen content mode, keyed tenant/run."""
    convert = ce_kafka.to_binary_event if mode == "binary" else ce_kafka.to_structured_event
    return convert(event, key_mapper=lambda _: key)


def main(argv):
    args = parse_args(argv)
    producer = Producer({
        "bootstrap.servers": args.brokers,
        "client.id": "exo-alerts-example-producer-python",
        # Retries never duplicate or reorder a record; the broker acknowledges
        # only once every in-sync replica has it.
        "enable.idempotence": True,
        "acks": "all",
        # Give up on a record (and report it) after 30 s rather than forever.
        "delivery.timeout.ms": 30000,
    })
    key = f"{args.tenant}/{args.run_id}"
    failures = []

    def reporter(event):
        def report(err, msg):
            # Called from flush() once per record: the broker's answer.
            if err is not None:
                failures.append(f"{event.get_type()} {event.get_id()}: {err}")
                return
            print(json.dumps({
                "id": event.get_id(), "type": event.get_type(), "key": msg.key().decode(),
                "topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
                "mode": args.mode,
            }), flush=True)
        return report

    for event in run_events(args, datetime.now(timezone.utc)):
        rec = to_record(event, args.mode, key)
        producer.produce(args.topic, key=rec.key, value=rec.value,
                         headers=list(rec.headers.items()), on_delivery=reporter(event))
    # flush() waits for every delivery report; what it returns is still unsent.
    unsent = producer.flush(35)
    if unsent:
        failures.append(f"{unsent} record(s) not acknowledged within 35 s")
    for f in failures:
        print("produce.py: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
