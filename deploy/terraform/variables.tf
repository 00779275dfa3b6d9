# Kafka: topics and ACLs -------------------------------------------------------

variable "topic_prefix" {
  description = "Prefix of every topic, consumer group and transactional id (EXO_TOPIC_PREFIX of every component). Changing it creates a new, empty set of topics."
  type        = string
  default     = "exo."

  validation {
    condition     = can(regex("^[a-zA-Z0-9._-]*$", var.topic_prefix))
    error_message = "topic_prefix may only hold letters, digits, '.', '_' and '-' (Kafka topic name characters)."
  }
}

variable "partitions" {
  description = "Partitions of every topic (EXO_PARTITIONS of every component). workflow-events and processor.run-state must keep the same count (the processor refuses to start otherwise): raise it for every topic at once, never lower it (a lower count recreates the topics, which prevent_destroy refuses). It caps the processor and dispatcher instances that do work."
  type        = number
  default     = 3

  validation {
    condition     = var.partitions >= 1 && var.partitions <= 1024 && floor(var.partitions) == var.partitions
    error_message = "partitions must be a whole number between 1 and 1024 (the range EXO_PARTITIONS accepts)."
  }
}

variable "replication_factor" {
  description = "Replicas of every topic. 3 for production; 1 only for a single-broker test cluster."
  type        = number
  default     = 3

  validation {
    condition     = var.replication_factor >= 1 && floor(var.replication_factor) == var.replication_factor
    error_message = "replication_factor must be a whole number of at least 1."
  }
}

variable "min_insync_replicas" {
  description = "min.insync.replicas of every topic (capped at replication_factor): the components produce with acks=all, so a write succeeds once this many replicas have it."
  type        = number
  default     = 2

  validation {
    condition     = var.min_insync_replicas >= 1 && floor(var.min_insync_replicas) == var.min_insync_replicas
    error_message = "min_insync_replicas must be a whole number of at least 1."
  }
}

variable "retry_tiers" {
  description = "Delays of the dispatcher's retry tiers (EXO_RETRY_TIERS), one topic <prefix>deliveries.retry.<delay> each. Write each delay the way the dispatcher names its topic: in its largest whole unit (2m, not 120s; 1h, not 60m; ms below a second). Removing a tier leaves its topic in Kafka (prevent_destroy) until its retries are drained."
  type        = list(string)
  default     = ["5s", "30s", "2m", "10m", "30m", "1h", "3h", "6h"]

  validation {
    condition     = length(var.retry_tiers) > 0 && length(distinct(var.retry_tiers)) == length(var.retry_tiers)
    error_message = "retry_tiers must name at least one tier, each once."
  }

  validation {
    condition = alltrue([for t in var.retry_tiers : (
      can(regex("^[1-9][0-9]*h$", t)) ||
      try(tonumber(regex("^([1-9][0-9]*)m$", t)[0]) % 60 != 0, false) ||
      try(tonumber(regex("^([1-9][0-9]*)s$", t)[0]) % 60 != 0, false) ||
      try(tonumber(regex("^([1-9][0-9]*)ms$", t)[0]) % 1000 != 0, false)
    )])
    error_message = "Each retry tier must be written in its largest whole unit, as the dispatcher names the tier's topic: 5s, 90s, 2m, 1h, 1500ms (not 120s, 60m or 2000ms)."
  }
}

variable "topic_config" {
  description = "Topic settings by topic name without the prefix (e.g. \"deliveries.dlq\" = { \"retention.ms\" = \"5184000000\" }), merged over the module's. cleanup.policy is the module's: a compacted topic that is not compacted loses state."
  type        = map(map(string))
  default     = {}

  validation {
    condition     = alltrue([for settings in values(var.topic_config) : !contains(keys(settings), "cleanup.policy")])
    error_message = "topic_config may not set cleanup.policy: the components rely on the module's (compact for alert-rules, webhook-endpoints and processor.run-state)."
  }
}

variable "principals" {
  description = "Kafka principal of each component, for its ACLs (User:<name> for SASL, User:CN=<name> for mTLS). null manages no ACLs (a cluster without an authorizer). Give each component its own principal: the ACLs of a principal shared by several are managed once."
  type = object({
    controlplane = string
    processor    = string
    dispatcher   = string
    recorder     = string
  })
  default = null
}

variable "acl_host" {
  description = "Host the ACLs allow the principals to connect from (* for any)."
  type        = string
  default     = "*"
}

variable "processor_transactional_id_prefix" {
  description = "Prefix of the processor's transactional ids, for its ACL (prefixed). null: <topic_prefix>processor-, which covers the default EXO_PROCESSOR_TRANSACTIONAL_ID (<prefix>processor-<hostname>) and the chart's one per pod."
  type        = string
  default     = null
}

variable "controlplane_runs_recorder" {
  description = "Whether the control planes run a recorder in their process (EXO_CONTROLPLANE_RECORDER=on): their principal then also gets the recorder's ACLs. The release runs the recorder on its own (false)."
  type        = bool
  default     = false
}

# Helm release ------------------------------------------------------------------

variable "release_name" {
  description = "Name of the Helm release."
  type        = string
  default     = "exo-alerts"
}

variable "namespace" {
  description = "Kubernetes namespace of the release."
  type        = string
  default     = "exo-alerts"
}

variable "create_namespace" {
  description = "Whether the release creates its namespace."
  type        = bool
  default     = true
}

variable "chart" {
  description = "Path (or repository reference) of the exo-alerts chart. null: deploy/helm/exo-alerts of this checkout."
  type        = string
  default     = null
}

variable "image" {
  description = "Container image of exo-alerts (make image), pushed to your registry. tag null: the chart's appVersion; digest (sha256:…) pins it and wins over the tag."
  type = object({
    repository  = string
    tag         = optional(string)
    digest      = optional(string)
    pull_policy = optional(string, "IfNotPresent")
  })
  default = {
    repository = "ghcr.io/exospherehost/exo-alerts"
  }
}

variable "database_url_secret" {
  description = "Existing Kubernetes Secret in the namespace holding DATABASE_URL (postgres://…; sslmode=verify-full and sslrootcert for a managed Postgres). Its user owns the tables: the migration Job runs with it. The module never sees the URL, so it stays out of the Terraform state."
  type = object({
    name = string
    key  = optional(string, "DATABASE_URL")
  })
}

variable "keyring_secret" {
  description = "Existing Kubernetes Secret in the namespace holding EXO_KEYRING (exo-alerts keyring generate)."
  type = object({
    name = string
    key  = optional(string, "EXO_KEYRING")
  })
}

variable "kafka_brokers" {
  description = "Bootstrap brokers the components connect to (KAFKA_BROKERS), host:port each."
  type        = list(string)

  validation {
    condition     = length(var.kafka_brokers) > 0 && alltrue([for b in var.kafka_brokers : can(regex("^[^,\\s]+:[0-9]+$", b))])
    error_message = "kafka_brokers must list at least one broker, each host:port."
  }
}

variable "kafka_tls" {
  description = "TLS to the brokers (EXO_KAFKA_TLS). secret: an existing Secret with the CA (ca_key; omit for the system roots) and, for mTLS, the client certificate and key (cert_key, key_key); server_name: the name the brokers' certificates carry, when it is not the broker's host."
  type = object({
    enabled     = bool
    server_name = optional(string, "")
    secret      = optional(string, "")
    ca_key      = optional(string, "ca.crt")
    cert_key    = optional(string, "")
    key_key     = optional(string, "")
  })
  default = {
    enabled = false
  }
}

variable "kafka_sasl" {
  description = "SASL of the components' Kafka clients (null: none). mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; secret: an existing Secret with the user's name and password (the chart gives every component these credentials, so set one principal for all four in principals)."
  type = object({
    mechanism    = string
    secret       = string
    username_key = optional(string, "username")
    password_key = optional(string, "password")
  })
  default = null

  validation {
    condition     = var.kafka_sasl == null || contains(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], try(var.kafka_sasl.mechanism, ""))
    error_message = "kafka_sasl.mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
  }
}

variable "replicas" {
  description = "Instances of each component (null: the chart's default). More processors or dispatchers than partitions sit idle."
  type = object({
    controlplane = optional(number)
    processor    = optional(number)
    dispatcher   = optional(number)
    recorder     = optional(number)
  })
  default = {}
}

variable "delivery_quota" {
  description = "Alerts delivered per tenant, and over all tenants, per minute of event time at most (0: no cap): the chart's quota.tenantPerMinute and quota.globalPerMinute, EXO_TENANT_DELIVERY_QUOTA and EXO_GLOBAL_DELIVERY_QUOTA of the processor, which enforces them, and the control plane, which reports them."
  type = object({
    tenant_per_minute = optional(number, 0)
    global_per_minute = optional(number, 0)
  })
  default = {}

  validation {
    condition = alltrue([for n in [var.delivery_quota.tenant_per_minute, var.delivery_quota.global_per_minute] :
    n >= 0 && floor(n) == n])
    error_message = "delivery_quota.tenant_per_minute and global_per_minute must be whole numbers, 0 or more (0: no cap)."
  }
}

variable "extra_values" {
  description = "Further chart values (resources, probes, NetworkPolicy, ServiceMonitor, HPA…), merged over the module's by Helm."
  type        = any
  default     = {}
}

variable "release_timeout" {
  description = "Seconds Helm waits for the migration Job and the rollout."
  type        = number
  default     = 600
}
