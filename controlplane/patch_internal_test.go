package controlplane

import (
	"encoding/json"
	"strings"
	"testing"
)

// deepPatch is the #8 report's body: about 54 KB nested depth levels deep.
func deepPatch(depth int) []byte {
	return []byte(`{"name":` + strings.Repeat(`{"a":`, depth) + `1` + strings.Repeat(`}`, depth) + `}`)
}

// BenchmarkParseDeepPatch measures what a 9,000-level patch costs now: a
// refusal by one pass over its bytes (it took ~45 s of CPU to merge).
func BenchmarkParseDeepPatch(b *testing.B) {
	raw := deepPatch(9000)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := parsePatch(raw); err == nil {
			b.Fatal("deep patch accepted")
		}
	}
}

// BenchmarkMergeWidePatch measures the merge of the largest patch the shape
// check lets through: 64 KB of headers two levels deep.
func BenchmarkMergeWidePatch(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"name":"n","headers":{`)
	for i := 0; sb.Len() < 60<<10; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`"X-H` + strings.Repeat("a", 40) + string(rune('a'+i%26)) + `":"value value value value"`)
	}
	sb.WriteString(`}}`)
	raw := []byte(sb.String())
	b.SetBytes(int64(len(raw)))
	doc := map[string]any{"name": "old", "target_url": "https://e.com/"}
	for b.Loop() {
		patch, err := parsePatch(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := mergePatch(doc, patch); err != nil {
			b.Fatal(err)
		}
	}
}

// The merge follows RFC 7396: nested objects merge, null removes, other
// values replace, and the document is not modified.
func TestMergePatch(t *testing.T) {
	doc := map[string]any{"name": "a", "headers": map[string]any{"X-A": "1", "X-B": "2"}, "gone": true}
	patch, err := parsePatch([]byte(`{"headers":{"X-A":null,"X-C":"3"},"gone":null,"name":"b","new":{"k":"v"}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := mergePatch(doc, patch)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"headers":{"X-B":"2","X-C":"3"},"name":"b","new":{"k":"v"}}`
	if raw, _ := json.Marshal(got); string(raw) != want {
		t.Errorf("merged = %s, want %s", raw, want)
	}
	if raw, _ := json.Marshal(doc); string(raw) != `{"gone":true,"headers":{"X-A":"1","X-B":"2"},"name":"a"}` {
		t.Errorf("document modified: %s", raw)
	}
	for body, refused := range map[string]bool{
		`{"a":{"b":{"c":1}}}`: true, `{"a":[[1]]}`: true, `{"a":[{"b":1}]}`: true,
		`{"a":"{{{[[["}`: false, `{"a":"\\\"{{{"}`: false, `{"a":{"b":"c"}}`: false,
	} {
		if _, err := parsePatch([]byte(body)); (err != nil) != refused {
			t.Errorf("parsePatch(%s) = %v, want refused %v", body, err, refused)
		}
	}
}
