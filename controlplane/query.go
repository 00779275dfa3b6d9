package controlplane

import (
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// Query parameters every list shares: its cursor and, for the histories, a
// time range.

// queryCursor parses ?cursor= with parse: a cursor the server did not give
// is a 400 at query.cursor.
func queryCursor[T any](s string, parse func(string) (T, error)) (T, error) {
	cur, err := parse(s)
	if err != nil {
		return cur, huma.Error400BadRequest("bad cursor", &huma.ErrorDetail{Location: "query.cursor", Message: err.Error()})
	}
	return cur, nil
}

// queryTimeRange refuses ?since= at or after ?until= (when both are set):
// a 422 at query.until.
func queryTimeRange(since, until time.Time) error {
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return huma.Error422UnprocessableEntity("validation failed", &huma.ErrorDetail{
			Location: "query.until", Message: "must be after since", Value: until,
		})
	}
	return nil
}
