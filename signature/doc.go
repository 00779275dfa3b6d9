// Package signature signs webhook deliveries and verifies them, for both
// schemes Exosphere Alerts sends on every delivery:
//
//   - X-Exosphere-Signature: t=<unix>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>
//   - Standard Webhooks: webhook-id, webhook-timestamp and
//     webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<t>.<body>")>
//
// In both, key is the base64-decoded part of the endpoint secret
// "whsec_<base64 key>" (the Standard Webhooks convention). During a secret
// rotation several secrets sign: the headers carry one signature per secret.
// Receivers written in Go can import this package
// (github.com/exospherehost/exo-alerts/signature) to verify; it imports
// nothing else of this module, so it brings no service code with it.
package signature
