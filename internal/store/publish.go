package store

import (
	"context"
	"fmt"
	"strconv"
)

// Unpublished reports whether an outbox row written by transaction xid (a
// 64-bit id from InTenant) is still unsent. Rows carry the low 32 bits of
// their transaction's id in xmin until the relay marks them sent, which
// rewrites them.
func (s *Store) Unpublished(ctx context.Context, xid string) (bool, error) {
	full, err := strconv.ParseUint(xid, 10, 64)
	if err != nil {
		return false, fmt.Errorf("store: transaction id %q: %w", xid, err)
	}
	xmin := strconv.FormatUint(full%(1<<32), 10)
	var pending bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM outbox WHERE sent_at IS NULL AND xmin = $1::text::xid)`, xmin).Scan(&pending); err != nil {
		return false, fmt.Errorf("store: unpublished outbox rows: %w", err)
	}
	return pending, nil
}
