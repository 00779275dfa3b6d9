# What each component does on Kafka, as ACLs for its principal. Read and
# Write imply Describe on the same resource. The components that create
# topics at start (control plane, processor, dispatcher) need Create on them
# even when the topics exist: a broker answers CreateTopics of an
# unauthorised principal with TOPIC_AUTHORIZATION_FAILED, not "already
# exists". DescribeConfigs lets them read the settings of the topics they
# create (the cleanup policy check). IdempotentWrite on the cluster is for
# brokers before Kafka 3.0: every producer of the project is idempotent.

locals {
  p = var.topic_prefix

  base_topic_names  = [for t in keys(local.base_topics) : local.topic_names[t]]
  retry_topic_names = [for t in keys(local.retry_topics) : local.topic_names[t]]

  transactional_id_prefix = coalesce(var.processor_transactional_id_prefix, "${local.p}processor-")

  consumer_groups = {
    processor = "${local.p}processor"
    # The main topic's group; each retry tier has <group>.retry.<delay>.
    dispatcher = "${local.p}dispatcher"
    recorder   = "${local.p}recorder"
  }

  # component => operation => topics (literal names)
  topic_access = {
    controlplane = {
      Create          = local.base_topic_names
      DescribeConfigs = local.base_topic_names
      # The outbox relay publishes rule, endpoint, rollout and tenant
      # limits snapshots, and redeliveries and dead-letter replays.
      Write = [for t in ["alert-rules", "webhook-endpoints", "tenants", "tenant-limits", "deliveries"] : local.topic_names[t]]
    }
    processor = {
      Create          = local.base_topic_names
      DescribeConfigs = local.base_topic_names
      # workflow-events and processor.aggregate-input in its group; rules,
      # endpoints, the rollout and tenant limits as tables; its changelogs
      # (run state, aggregate state) when a partition is assigned.
      Read = [for t in ["workflow-events", "alert-rules", "webhook-endpoints", "tenants", "tenant-limits", "processor.run-state",
      "processor.aggregate-input", "processor.aggregate-state"] : local.topic_names[t]]
      # In its transactions.
      Write = [for t in ["deliveries", "processor.run-state", "rule-errors", "workflow-events.invalid",
      "processor.aggregate-input", "processor.aggregate-state", "aggregate-groups", "quota-usage"] : local.topic_names[t]]
    }
    dispatcher = {
      Create          = concat(local.base_topic_names, local.retry_topic_names)
      DescribeConfigs = concat(local.base_topic_names, local.retry_topic_names)
      Read            = concat([local.topic_names["deliveries"], local.topic_names["webhook-endpoints"], local.topic_names["tenants"]], local.retry_topic_names)
      # Results, dead letters and endpoint health notices.
      Write = concat([local.topic_names["delivery-results"], local.topic_names["deliveries.dlq"], local.topic_names["endpoint-health"]], local.retry_topic_names)
    }
    recorder = {
      Read = [for t in ["deliveries", "delivery-results", "deliveries.dlq", "rule-errors", "aggregate-groups", "quota-usage", "endpoint-health"] : local.topic_names[t]]
    }
  }

  # component => its bindings: resource type, pattern, resource name, operation.
  bindings_by_component = {
    for c, extra in {
      controlplane = [
        { type = "Cluster", pattern = "Literal", name = "kafka-cluster", op = "IdempotentWrite" },
      ]
      processor = [
        # Joins its group; commits offsets inside its transactions.
        { type = "Group", pattern = "Literal", name = local.consumer_groups.processor, op = "Read" },
        { type = "TransactionalID", pattern = "Prefixed", name = local.transactional_id_prefix, op = "Write" },
        { type = "Cluster", pattern = "Literal", name = "kafka-cluster", op = "IdempotentWrite" },
      ]
      dispatcher = [
        # Its group and one per retry tier (<group>.retry.<delay>); a static
        # member leaves its group on shutdown.
        { type = "Group", pattern = "Prefixed", name = local.consumer_groups.dispatcher, op = "Read" },
        # Lists the retry tier topics, to warn about tiers no longer
        # configured whose retries wait.
        { type = "Topic", pattern = "Prefixed", name = "${local.topic_names["deliveries"]}.retry.", op = "Describe" },
        { type = "Cluster", pattern = "Literal", name = "kafka-cluster", op = "IdempotentWrite" },
      ]
      recorder = [
        { type = "Group", pattern = "Literal", name = local.consumer_groups.recorder, op = "Read" },
      ]
      } : c => concat(flatten([
        for op, names in local.topic_access[c] : [for n in names : { type = "Topic", pattern = "Literal", name = n, op = op }]
    ]), extra)
  }

  # component => principal; the control plane takes the recorder's ACLs
  # too when it runs one.
  acl_components = var.principals == null ? {} : {
    for c, principal in var.principals : c => distinct(concat(
      local.bindings_by_component[c],
      c == "controlplane" && var.controlplane_runs_recorder ? local.bindings_by_component.recorder : [],
    ))
  }

  # One ACL per distinct (principal, resource, operation): a principal shared
  # by components gets each ACL once.
  acls = {
    for key, list in {
      for b in flatten([
        for c, bindings in local.acl_components : [
          for x in bindings : {
            principal     = var.principals[c]
            resource_type = x.type
            pattern       = x.pattern
            resource_name = x.name
            operation     = x.op
          }
        ]
      ]) : "${b.principal}|${b.resource_type}|${b.pattern}|${b.resource_name}|${b.operation}" => b...
    } : key => list[0]
  }
}

resource "kafka_acl" "this" {
  for_each = local.acls

  acl_principal                = each.value.principal
  acl_host                     = var.acl_host
  acl_operation                = each.value.operation
  acl_permission_type          = "Allow"
  resource_type                = each.value.resource_type
  resource_name                = each.value.resource_name
  resource_pattern_type_filter = each.value.pattern
}
