# The release of deploy/helm/exo-alerts, after its topics and ACLs exist, on
# the same topic prefix, partitions and retry tiers. The chart's migration
# Job (exo-alerts migrate up) runs before any pod of a new version starts.

locals {
  chart = coalesce(var.chart, "${path.module}/../helm/exo-alerts")

  release_values = {
    image = merge(
      { repository = var.image.repository, pullPolicy = var.image.pull_policy },
      var.image.tag == null ? {} : { tag = var.image.tag },
      var.image.digest == null ? {} : { digest = var.image.digest },
    )
    database = {
      existingSecret    = var.database_url_secret.name
      existingSecretKey = var.database_url_secret.key
    }
    keyring = {
      existingSecret    = var.keyring_secret.name
      existingSecretKey = var.keyring_secret.key
    }
    kafka = {
      brokers = var.kafka_brokers
      tls = {
        enabled        = var.kafka_tls.enabled
        serverName     = var.kafka_tls.server_name
        existingSecret = var.kafka_tls.secret
        caKey          = var.kafka_tls.ca_key
        certKey        = var.kafka_tls.cert_key
        keyKey         = var.kafka_tls.key_key
      }
      sasl = var.kafka_sasl == null ? { mechanism = "" } : {
        mechanism      = var.kafka_sasl.mechanism
        existingSecret = var.kafka_sasl.secret
        usernameKey    = var.kafka_sasl.username_key
        passwordKey    = var.kafka_sasl.password_key
      }
    }
    topics = {
      prefix     = var.topic_prefix
      partitions = var.partitions
      retryTiers = var.retry_tiers
    }
    quota = {
      tenantPerMinute = var.delivery_quota.tenant_per_minute
      globalPerMinute = var.delivery_quota.global_per_minute
    }
    controlplane = { for k, v in { replicas = var.replicas.controlplane } : k => v if v != null }
    processor    = { for k, v in { replicas = var.replicas.processor } : k => v if v != null }
    dispatcher   = { for k, v in { replicas = var.replicas.dispatcher } : k => v if v != null }
    recorder = merge(
      # The recorder runs on its own unless the control planes run one.
      { enabled = !var.controlplane_runs_recorder },
      { for k, v in { replicas = var.replicas.recorder } : k => v if v != null },
    )
  }
}

resource "helm_release" "this" {
  name             = var.release_name
  namespace        = var.namespace
  create_namespace = var.create_namespace
  chart            = local.chart

  # Later values win: the module's, then the caller's.
  values = [yamlencode(local.release_values), yamlencode(var.extra_values)]

  wait    = true
  atomic  = true
  timeout = var.release_timeout

  depends_on = [kafka_topic.this, kafka_acl.this]
}
