output "topics" {
  description = "Every topic of the module: name without the prefix => full name."
  value       = { for t, _ in kafka_topic.this : t => kafka_topic.this[t].name }
}

output "retry_tier_topics" {
  description = "The dispatcher's retry tier topics, in the order of retry_tiers."
  value       = [for delay in var.retry_tiers : kafka_topic.this["deliveries.retry.${delay}"].name]
}

output "consumer_groups" {
  description = "Consumer group of each component that consumes in a group (the dispatcher's retry tiers add <group>.retry.<delay>)."
  value       = local.consumer_groups
}

output "processor_transactional_id_prefix" {
  description = "Prefix of the processor's transactional ids (its ACL is prefixed)."
  value       = local.transactional_id_prefix
}

output "acls" {
  description = "The ACLs the module manages: principal, resource_type, pattern, resource_name, operation (empty when principals is null)."
  value       = values(local.acls)
}

output "release_name" {
  description = "Name of the Helm release."
  value       = helm_release.this.name
}

output "namespace" {
  description = "Namespace of the release."
  value       = helm_release.this.namespace
}

output "release_status" {
  description = "Status of the Helm release (deployed once the rollout and the migration Job succeeded)."
  value       = helm_release.this.status
}
