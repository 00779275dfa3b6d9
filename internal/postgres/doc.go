// Package postgres holds the Postgres plumbing shared by the components: the
// connection pool and a throwaway local cluster started from the machine's
// PostgreSQL server binaries (for dev mode). It must not contain queries of
// the application.
package postgres
