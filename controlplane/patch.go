package controlplane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// Updates are JSON merge patches (RFC 7396) of a resource's create document:
// the patch is merged into the document of the current state, and the result
// must pass exactly the validation of a create. A member set to null goes
// back to its default.

// patchIn is the input of a PATCH: the raw merge patch and the precondition.
type patchIn struct {
	ID      string `path:"id" maxLength:"64"`
	IfMatch string `header:"If-Match" doc:"The resource's ETag as last read; the update is refused with 412 when the resource has changed since."`
	RawBody []byte `contentType:"application/merge-patch+json"`
}

// deleteIn is the input of a DELETE.
type deleteIn struct {
	ID      string `path:"id" maxLength:"64"`
	IfMatch string `header:"If-Match" doc:"The resource's ETag as last read; the delete is refused with 412 when the resource has changed since."`
}

// etag is the entity tag of a resource version.
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// checkIfMatch answers 412 unless ifMatch is empty, "*", or lists the ETag
// of version. The comparison is strong (RFC 9110 13.1.1): a weak W/"n"
// does not match.
func checkIfMatch(ifMatch string, version int64) error {
	ifMatch = strings.TrimSpace(ifMatch)
	if ifMatch == "" || ifMatch == "*" {
		return nil
	}
	want := etag(version)
	for tag := range strings.SplitSeq(ifMatch, ",") {
		if strings.TrimSpace(tag) == want {
			return nil
		}
	}
	return huma.NewError(412, "precondition failed: the resource has changed since you read it (its ETag is now "+want+"); read it again and retry",
		&huma.ErrorDetail{Location: "header.If-Match", Message: "does not match the current ETag " + want, Value: ifMatch})
}

// parsePatch decodes a merge patch; it must be a JSON object.
func parsePatch(raw []byte) (map[string]json.RawMessage, error) {
	var patch map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&patch); err != nil || patch == nil || dec.More() {
		msg := "the body must be a JSON object (a JSON merge patch, RFC 7396)"
		if err != nil {
			msg += ": " + err.Error()
		}
		return nil, huma.Error400BadRequest(msg)
	}
	return patch, nil
}

// mergePatch applies patch to doc (RFC 7396) and returns the result.
func mergePatch(doc map[string]any, patch map[string]json.RawMessage) (map[string]any, error) {
	out := make(map[string]any, len(doc))
	for k, v := range doc {
		out[k] = v
	}
	for k, raw := range patch {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("member %q: %w", k, err)
		}
		if v == nil {
			delete(out, k)
			continue
		}
		if obj, ok := v.(map[string]any); ok {
			cur, _ := out[k].(map[string]any)
			if cur == nil {
				cur = map[string]any{}
			}
			sub := make(map[string]json.RawMessage, len(obj))
			for sk := range obj {
				b, _ := json.Marshal(obj[sk])
				sub[sk] = b
			}
			merged, err := mergePatch(cur, sub)
			if err != nil {
				return nil, err
			}
			out[k] = merged
			continue
		}
		out[k] = v
	}
	return out, nil
}

// toDoc turns a create document into its generic JSON form.
func toDoc(v any) map[string]any {
	b, _ := json.Marshal(v)
	var doc map[string]any
	_ = json.Unmarshal(b, &doc)
	return doc
}

// validateDoc checks doc against the schema of the Go type of into, as Huma
// checks a create's body, then decodes it into into. The problems name the
// body's fields.
func (s *Server) validateDoc(doc map[string]any, into any) error {
	reg := s.api.OpenAPI().Components.Schemas
	schema := reg.Schema(reflect.TypeOf(into).Elem(), true, "")
	res := &huma.ValidateResult{}
	pb := huma.NewPathBuffer([]byte{}, 0)
	pb.Push("body")
	huma.Validate(reg, schema, pb, huma.ModeWriteToServer, doc, res)
	if len(res.Errors) > 0 {
		return huma.Error422UnprocessableEntity("validation failed", res.Errors...)
	}
	b, _ := json.Marshal(doc)
	if err := json.Unmarshal(b, into); err != nil {
		return huma.Error422UnprocessableEntity("validation failed: " + err.Error())
	}
	return nil
}

// setPatchSchema documents a PATCH operation's body as a merge patch of
// the given schema (Huma documents a raw body as binary).
func setPatchSchema(api huma.API, path string, patchType any) {
	op := api.OpenAPI().Paths[path].Patch
	schema := api.OpenAPI().Components.Schemas.Schema(reflect.TypeOf(patchType), true, "")
	op.RequestBody.Content = map[string]*huma.MediaType{
		"application/merge-patch+json": {Schema: schema},
		"application/json":             {Schema: schema},
	}
}
