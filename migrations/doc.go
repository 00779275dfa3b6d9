// Package migrations owns the Postgres schema: numbered up/down SQL files
// embedded in the binary, and a small runner that applies them.
//
// Each migration runs in its own transaction under a transaction-scoped
// advisory lock, so concurrent starts of several control planes apply each
// migration once. It must not contain application queries.
package migrations
