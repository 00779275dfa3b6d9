package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// filter is one extra condition of a list query: column = value.
type filter struct {
	column string
	value  any
}

// conds builds the AND-ed conditions of a search after its fixed
// arguments (args holds them at first): each condition names its own
// argument as $%d.
type conds struct {
	args  []any
	where string // " AND <condition>" for each condition
}

// add adds cond, whose %d is v's argument number.
func (c *conds) add(cond string, v any) {
	c.args = append(c.args, v)
	c.where += " AND " + fmt.Sprintf(cond, len(c.args))
}

// addRaw adds cond, which takes no argument.
func (c *conds) addRaw(cond string) { c.where += " AND " + cond }

// before keeps, newest first, the rows whose position (cols: a time and
// an id) is before cur's; nothing when cur is nil.
func (c *conds) before(cols string, cur *Cursor) {
	if cur == nil {
		return
	}
	c.args = append(c.args, cur.CreatedAt, cur.ID)
	c.where += fmt.Sprintf(" AND (%s) < ($%d, $%d)", cols, len(c.args)-1, len(c.args))
}

// listPage runs a list query of the transaction's tenant on table after
// cur, in (created_at, id) order, and returns at most limit rows and the
// cursor of the next page ("" when there is none).
func listPage[T any](ctx context.Context, t *Tx, table, cols string, cur *Cursor, limit int, filters []filter,
	scan func(pgx.Row) (*T, error), pos func(*T) Cursor,
) ([]*T, string, error) {
	args := []any{t.tenant, limit + 1}
	where := ""
	if cur != nil {
		where = ` AND (created_at, id) > ($3, $4)`
		args = append(args, cur.CreatedAt, cur.ID)
	}
	for _, f := range filters {
		args = append(args, f.value)
		where += fmt.Sprintf(" AND %s = $%d", f.column, len(args))
	}
	rows, err := t.tx.Query(ctx, `SELECT `+cols+` FROM `+table+` WHERE tenant_id = $1 AND deleted_at IS NULL`+where+
		` ORDER BY created_at, id LIMIT $2`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("store: list %s: %w", table, err)
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("store: list %s: %w", table, err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = pos(out[len(out)-1]).String()
	}
	return out, next, nil
}

// softDelete marks row id of table deleted and inactive: hidden from the
// API's lists and gets, kept for audit and history. ErrNotFound when the
// tenant has no such live row.
func (t *Tx) softDelete(ctx context.Context, table, id string) error {
	tag, err := t.tx.Exec(ctx, `UPDATE `+table+` SET deleted_at = now(), is_active = false, updated_at = now(), version = version + 1
		WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL`, t.tenant, id)
	if err != nil {
		return fmt.Errorf("store: delete from %s: %w", table, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}
