package signature

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

// benchBody is the size of a typical rendered webhook delivery.
var benchBody = bytes.Repeat([]byte(`{"type":"workflow.run.failed","x":1}`), 40)

// BenchmarkSign signs one delivery: with its endpoint's secret, and during a
// rotation with the previous one too. Run with -benchmem: the allocations per
// delivery are the point (docs/benchmarks.md, issue #13).
func BenchmarkSign(b *testing.B) {
	for _, bc := range []struct {
		name    string
		secrets []string
	}{
		{"one_secret", []string{NewSecret()}},
		{"rotation", []string{NewSecret(), NewSecret()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := http.Header{}
			ts := time.Unix(1_764_324_000, 0)
			b.ReportAllocs()
			for b.Loop() {
				if err := Sign(h, bc.secrets, "alrt_0123456789abcdef", ts, benchBody); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
