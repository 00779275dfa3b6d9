package controlplane

import (
	"encoding/json"
	"testing"
)

// Whatever a client sends, reading the request into event documents does
// not panic, and every document it yields is JSON the judge
// (schemas.CheckWorkflowEvent) can read.
func FuzzIngestDocuments(f *testing.F) {
	f.Add(ctStructured, `{"specversion":"1.0"}`, "")
	f.Add(ctBatch, `[{"id":"a"},42,[]]`, "")
	f.Add("application/json", `{"workflow":{}}`, "1.0")
	f.Add("text/plain; charset=utf-8", `x`, "1.0")
	f.Add(ctBatch+"; charset=utf-8", `[]`, "")
	f.Fuzz(func(t *testing.T, ct, body, specversion string) {
		in := &ingestIn{ContentType: ct, RawBody: []byte(body)}
		if specversion != "" {
			in.attrs = map[string]string{"specversion": specversion, "id": "e1"}
		}
		docs, err := ingestDocuments(in)
		if err != nil {
			return
		}
		if len(docs) == 0 {
			t.Fatal("no error and no event")
		}
		for i, d := range docs {
			if !json.Valid(d) {
				t.Fatalf("document %d is not JSON: %q", i, d)
			}
		}
	})
}
