package store

import (
	"context"
	"fmt"
)

// EnsureTenant creates the tenant if it does not exist.
func (s *Store) EnsureTenant(ctx context.Context, id, name string) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`, id, name); err != nil {
		return fmt.Errorf("store: ensure tenant %q: %w", id, err)
	}
	return nil
}
