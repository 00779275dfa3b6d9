// Package schemas owns the records that cross a process boundary in
// Exosphere Alerts: the workflow CloudEvent the engine produces, the rule and
// endpoint snapshots on the compacted topics, the delivery and result
// records, the processor's per-run state on its changelog, and the webhook
// payload v1 that leaves the platform.
//
// For each record it holds the Go type (types.go), a JSON Schema (draft
// 2020-12, embedded; see Schema) and example documents under examples/ that
// the tests validate and round-trip through the Go types. Validate checks a
// document against its schema with compiled schemas that are safe for
// concurrent use and cheap enough to run on every event.
//
// Conventions of the schemas: times are RFC 3339 with an upper-case T and Z
// (what encoding/json reads and writes); integers carry format int32/int64
// and must be written as integer literals that fit the Go type; records are
// closed (additionalProperties false), except the workflow event, which
// admits CloudEvents extension attributes and new members of data.
//
// Adding a kind: a <kind>.schema.json with $id Kind.ID(), a Kind constant
// listed in Kinds, its Go type, examples/<kind>.json and at least one
// examples/invalid/<kind>.<what>.json; the tests fail until all exist.
//
// The package is a leaf: it must not import other packages of this module.
package schemas
