terraform {
  # optional() object attributes (variable "kafka") need 1.3.
  required_version = ">= 1.3"

  required_providers {
    # The module declares its providers and the caller configures them
    # (brokers and credentials of an admin principal for kafka; the
    # cluster's kubeconfig for helm): see README.md.
    kafka = {
      source  = "Mongey/kafka"
      version = "~> 0.13"
    }
    helm = {
      source  = "hashicorp/helm"
      version = ">= 2.12, < 4.0"
    }
  }
}
