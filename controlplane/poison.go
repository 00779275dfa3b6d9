package controlplane

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
)

// Poison versus transient, for the loops that write Postgres (recorder) and
// Kafka (outbox relay): a record Postgres refuses with a data error will be
// refused every time, so it is set aside (quarantined) and the loop moves
// on; anything else (connection refused, serialization failure, shutdown,
// a missing table during a deploy) is retried until it succeeds.

// isDataError reports whether Postgres refused a statement because of the
// data it was given: SQLSTATE class 22 (data exception: a NUL in jsonb,
// invalid text encoding, a value out of range), 23 (integrity constraint
// violation; the recorder's expected conflicts are absorbed by ON CONFLICT
// and never surface) or 54 (program limit exceeded: a value too large for
// an index, too many columns). Writing the same record again fails again.
func isDataError(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) != 5 {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "54":
		return true
	}
	return false
}

// pgText returns s as Postgres text can hold it: NUL (which text and jsonb
// refuse) and invalid UTF-8 become U+FFFD.
func pgText(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// pgJSON returns the JSON document raw as Postgres jsonb can hold it: the
// escapes jsonb refuses (\u0000, an unpaired UTF-16 surrogate) become
// \ufffd and invalid UTF-8 becomes U+FFFD. raw is not modified; a document
// that needs nothing is returned as is.
func pgJSON(raw []byte) []byte {
	if !utf8.Valid(raw) {
		raw = bytes.ToValidUTF8(raw, []byte("\uFFFD"))
	}
	if !bytes.Contains(raw, []byte(`\u`)) {
		return raw
	}
	var out []byte // a copy, made at the first change
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !inString {
			inString = c == '"'
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(raw) || raw[i+1] != 'u' {
				i++ // a one-character escape
				continue
			}
			v, ok := hex4(raw, i+2)
			if !ok {
				i++
				continue
			}
			bad := v == 0 || v >= 0xDC00 && v <= 0xDFFF
			if v >= 0xD800 && v <= 0xDBFF {
				if w, ok := hex4(raw, i+8); ok && raw[i+6] == '\\' && raw[i+7] == 'u' && w >= 0xDC00 && w <= 0xDFFF {
					i += 11 // a surrogate pair
					continue
				}
				bad = true
			}
			if bad {
				if out == nil {
					out = bytes.Clone(raw)
				}
				copy(out[i+2:i+6], "fffd")
			}
			i += 5
		}
	}
	if out == nil {
		return raw
	}
	return out
}

// hex4 reads the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(b) {
		return 0, false
	}
	var v rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// loopOutage tracks a dependency that keeps failing, so a loop logs its
// loopOutage once (at ERROR, with the first error) and its end once (at INFO,
// with how long it lasted), not every retry, and retries promptly: the
// backoff doubles from minWait to maxWait, a cap low enough that the loop
// resumes within maxWait of the dependency's return.
type loopOutage struct {
	log              *slog.Logger
	what             string // e.g. "postgres"
	minWait, maxWait time.Duration

	since    time.Time
	failures int
	wait     time.Duration
}

// failed records a failed try and returns how long to wait before the next.
func (o *loopOutage) failed(err error) time.Duration {
	o.failures++
	if o.failures == 1 {
		o.since = time.Now()
		o.wait = o.minWait
		o.log.Error(o.what+" unavailable; retrying until it answers", "err", err)
	} else {
		o.wait = min(2*o.wait, o.maxWait)
		o.log.Debug(o.what+" still unavailable", "err", err, "failures", o.failures, "retry_in", o.wait)
	}
	return o.wait
}

// ok records a successful try, logging the end of an loopOutage.
func (o *loopOutage) ok() {
	if o.failures == 0 {
		return
	}
	o.log.Info(o.what+" available again", "down_for", time.Since(o.since).Round(time.Millisecond), "failures", o.failures)
	o.failures = 0
}
