package store

import (
	"bytes"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
)

// Poison versus transient, for the loops that write Postgres (recorder) and
// Kafka (outbox relay): a record Postgres refuses with a data error will be
// refused every time, so it is set aside (quarantined) and the loop moves
// on; anything else (connection refused, serialization failure, shutdown,
// a missing table during a deploy) is retried until it succeeds.

// IsDataError reports whether Postgres refused a statement because of the
// data it was given: SQLSTATE class 22 (data exception: a NUL in jsonb,
// invalid text encoding, a value out of range), 23 (integrity constraint
// violation; the recorder's expected conflicts are absorbed by ON CONFLICT
// and never surface) or 54 (program limit exceeded: a value too large for
// an index, too many columns). Writing the same record again fails again.
func IsDataError(err error) bool {
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

// Text returns s as Postgres text can hold it: NUL (which text and jsonb
// refuse) and invalid UTF-8 become U+FFFD.
func Text(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// JSON returns the JSON document raw as Postgres jsonb can hold it: the
// escapes jsonb refuses (\u0000, an unpaired UTF-16 surrogate) become
// \ufffd and invalid UTF-8 becomes U+FFFD. raw is not modified; a document
// that needs nothing is returned as is.
func JSON(raw []byte) []byte {
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
