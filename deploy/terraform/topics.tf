# Every topic the components create at start (internal/kafka Topics.Specs;
# the dispatcher adds a retry tier topic per EXO_RETRY_TIERS delay), with the
# settings they create it with. Created here first, with the replication the
# binary leaves to the broker's default, they find them in place. The check
# in check/ fails when this list or these settings drift from the binary's.

locals {
  day_ms = 24 * 60 * 60 * 1000

  # Compacted: the latest record of each key is the state (a rule, an
  # endpoint, a run). Deleting by age would lose it.
  compacted = {
    "cleanup.policy"        = "compact"
    "min.compaction.lag.ms" = "0"
    "segment.ms"            = "3600000"
  }

  # Topic name without the prefix => the settings the binary creates it with.
  base_topics = {
    "workflow-events"         = { "cleanup.policy" = "delete", "retention.ms" = tostring(7 * local.day_ms) }
    "workflow-events.invalid" = { "cleanup.policy" = "delete", "retention.ms" = tostring(14 * local.day_ms) }
    "alert-rules"             = local.compacted
    "webhook-endpoints"       = local.compacted
    "processor.run-state"     = local.compacted
    "deliveries"              = { "cleanup.policy" = "delete" }
    "deliveries.dlq"          = { "cleanup.policy" = "delete", "retention.ms" = tostring(30 * local.day_ms) }
    "delivery-results"        = { "cleanup.policy" = "delete" }
    "rule-errors"             = { "cleanup.policy" = "delete", "retention.ms" = tostring(7 * local.day_ms) }
    "tenants"                 = local.compacted
    # Aggregate rules (docs/design/aggregate-alerts.md): the processor's
    # repartition topic and its co-partitioned changelog, the groups' state
    # for the API, quota suppressions, endpoint health, tenant limits.
    "processor.aggregate-input" = { "cleanup.policy" = "delete", "retention.ms" = tostring(7 * local.day_ms) }
    "processor.aggregate-state" = local.compacted
    "aggregate-groups"          = local.compacted
    "quota-usage"               = { "cleanup.policy" = "delete", "retention.ms" = tostring(7 * local.day_ms) }
    "endpoint-health"           = { "cleanup.policy" = "delete", "retention.ms" = tostring(7 * local.day_ms) }
    "tenant-limits"             = local.compacted
  }

  # Topics whose partition count is fixed by the binary, whatever
  # var.partitions: the rollout table is one partition (every processor and
  # dispatcher reads all of it, in order); so are the tenant limits.
  fixed_partitions = { "tenants" = 1, "tenant-limits" = 1 }

  retry_topics = { for delay in var.retry_tiers : "deliveries.retry.${delay}" => { "cleanup.policy" = "delete" } }

  topics = merge(local.base_topics, local.retry_topics)

  # Topic name without the prefix => full name.
  topic_names = { for t in keys(local.topics) : t => "${var.topic_prefix}${t}" }
}

resource "kafka_topic" "this" {
  for_each = local.topics

  name               = local.topic_names[each.key]
  partitions         = lookup(local.fixed_partitions, each.key, var.partitions)
  replication_factor = var.replication_factor
  config = merge(
    each.value,
    { "min.insync.replicas" = tostring(min(var.min_insync_replicas, var.replication_factor)) },
    lookup(var.topic_config, each.key, {}),
    # The module's cleanup policy wins over topic_config (its validation
    # refuses one too).
    { "cleanup.policy" = each.value["cleanup.policy"] },
  )

  lifecycle {
    # A destroyed topic loses its records: rules, endpoints and run state in
    # the compacted ones, alerts waiting in deliveries and the retry tiers.
    # Fewer partitions or another replication factor would recreate every
    # topic; a removed retry tier would drop the retries waiting in it.
    prevent_destroy = true
  }
}
