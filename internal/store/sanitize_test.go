package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestJSON(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{`{"a":"b"}`, `{"a":"b"}`},
		{`{"a":"\u0000"}`, `{"a":"\ufffd"}`},
		{`{"a\u0000":"x\u0000y\u0000"}`, `{"a\ufffd":"x\ufffdy\ufffd"}`},
		{`{"a":"\\u0000"}`, `{"a":"\\u0000"}`},           // an escaped backslash, then text
		{`{"a":"\\\u0000"}`, `{"a":"\\\ufffd"}`},         // an escaped backslash, then NUL
		{`{"a":"\ud83d\ude00"}`, `{"a":"\ud83d\ude00"}`}, // a surrogate pair
		{`{"a":"\ud83d"}`, `{"a":"\ufffd"}`},             // a lone high surrogate
		{`{"a":"\ude00x"}`, `{"a":"\ufffdx"}`},           // a lone low surrogate
		{`{"a":"\ud83d\u0041"}`, `{"a":"\ufffd\u0041"}`},
		{`{"a":"\u00e9","b":"\u0001"}`, `{"a":"\u00e9","b":"\u0001"}`},
		{"{\"a\":\"\xff\"}", "{\"a\":\"\uFFFD\"}"},
	} {
		in := []byte(c.in)
		got := string(JSON(in))
		if got != c.want {
			t.Errorf("JSON(%s) = %s, want %s", c.in, got, c.want)
		}
		if string(in) != c.in {
			t.Errorf("JSON modified its input %s", c.in)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("JSON(%s) = %s is not JSON", c.in, got)
		}
	}
}

// FuzzPgJSON: whatever valid JSON goes in, valid JSON comes out, and it
// decodes to the input's value with NUL as U+FFFD.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"a":"\u0000"}`, `["\\u0000","\ud800\udc00","\udc00"]`, `"\u0000\\"`, `1`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var in any
		if !utf8.Valid(doc) || json.Unmarshal(doc, &in) != nil {
			return // invalid UTF-8: runs of bad bytes become one U+FFFD (TestPgJSON)
		}
		out := JSON(doc)
		var got any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("JSON(%q) = %q: %v", doc, out, err)
		}
		want, _ := json.Marshal(sanitize(in))
		have, _ := json.Marshal(got)
		if string(want) != string(have) {
			t.Fatalf("JSON(%q) = %q decodes to %s, want %s", doc, out, have, want)
		}
	})
}

func sanitize(v any) any {
	switch x := v.(type) {
	case string:
		return Text(x)
	case []any:
		for i := range x {
			x[i] = sanitize(x[i])
		}
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[Text(k)] = sanitize(e)
		}
		return out
	}
	return v
}

func TestText(t *testing.T) {
	t.Parallel()
	if got := Text("a\x00b\xffc"); got != "a\uFFFDb\uFFFDc" {
		t.Errorf("Text = %q", got)
	}
}

func TestIsDataError(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]bool{
		"22P05": true, "22021": true, "23514": true, "23505": true, "54000": true,
		"08006": false, "40001": false, "57P01": false, "42P01": false, "53300": false,
	} {
		err := fmt.Errorf("recorder: insert: %w", &pgconn.PgError{Code: code})
		if got := IsDataError(err); got != want {
			t.Errorf("IsDataError(%s) = %v, want %v", code, got, want)
		}
	}
	if IsDataError(errors.New("dial tcp: connection refused")) {
		t.Error("a connection error is a data error")
	}
}
