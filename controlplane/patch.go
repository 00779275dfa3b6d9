package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/exospherehost/exo-alerts/internal/store"
)

// Updates are JSON merge patches (RFC 7396) of a resource's create document:
// the patch is merged into the document of the current state, and the result
// must pass exactly the validation of a create. A member set to null goes
// back to its default.

// patchIn is the input of a PATCH: the raw merge patch and the precondition.
type patchIn struct {
	ID      string `path:"id" maxLength:"64" doc:"The resource's id"`
	IfMatch string `header:"If-Match" doc:"The resource's ETag as last read; the update is refused with 412 when the resource has changed since."`
	RawBody []byte `contentType:"application/merge-patch+json"`
}

// deleteIn is the input of a DELETE.
type deleteIn struct {
	ID      string `path:"id" maxLength:"64" doc:"The resource's id"`
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

// maxPatchDepth is how deeply a merge patch may nest objects and arrays:
// the deepest create document (a webhook's headers object inside the
// document) is two levels deep, so nothing deeper could ever validate.
// Checking it first, in one pass over the bytes, refuses a pathological
// body before any decoding, merging or database work.
const maxPatchDepth = 2

// checkPatchShape refuses a body nested deeper than maxPatchDepth. It
// scans the raw bytes once (strings skipped), so its cost is linear in the
// body, which the operation's MaxBodyBytes bounds.
func checkPatchShape(raw []byte) error {
	depth, inString, escaped := 0, false, false
	for _, c := range raw {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > maxPatchDepth {
				return huma.Error400BadRequest(fmt.Sprintf("the merge patch is nested too deeply: at most %d levels of objects or arrays (the create document has no more)", maxPatchDepth),
					&huma.ErrorDetail{Location: "body", Message: fmt.Sprintf("nested deeper than %d levels", maxPatchDepth)})
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// parsePatch decodes a merge patch; it must be a JSON object no deeper
// than maxPatchDepth. It touches no database: a PATCH is checked before
// its transaction starts.
func parsePatch(raw []byte) (map[string]json.RawMessage, error) {
	if err := checkPatchShape(raw); err != nil {
		return nil, err
	}
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

// mergePatch applies patch to doc (RFC 7396) and returns the result; doc
// is not modified. Each member is decoded once: the cost is linear in the
// patch.
func mergePatch(doc map[string]any, patch map[string]json.RawMessage) (map[string]any, error) {
	p := make(map[string]any, len(patch))
	for k, raw := range patch {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("member %q: %w", k, err)
		}
		p[k] = v
	}
	return mergeObject(doc, p), nil
}

// mergeObject is RFC 7396's MergePatch of an object patch into target
// (nil or not an object: an empty object).
func mergeObject(target, patch map[string]any) map[string]any {
	out := make(map[string]any, len(target)+len(patch))
	for k, v := range target {
		out[k] = v
	}
	for k, v := range patch {
		switch v := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			cur, _ := out[k].(map[string]any)
			out[k] = mergeObject(cur, v)
		default:
			out[k] = v
		}
	}
	return out
}

// patchSteps are a resource's parts of an update run by
// patchOutsideLock.
type patchSteps struct {
	// read loads the resource without a lock and returns its version.
	read func(ctx context.Context, tx *store.Tx) (int64, error)
	// apply merges the patch into what read loaded and validates the
	// result (no database work: it runs outside any transaction). It
	// reports whether anything a user set changes.
	apply func() (bool, error)
	// lock locks the row FOR UPDATE and returns its version. Locks that
	// must come before the row's (see patchRule) are taken here first.
	lock func(ctx context.Context, tx *store.Tx) (int64, error)
	// write stores the change, with its audit and outbox rows, in the
	// transaction that holds the lock.
	write func(ctx context.Context, tx *store.Tx) error
}

// patchOutsideLock runs an update without doing any work under the row
// lock: the merge, its validation and any sealing run on a copy read
// without a lock, and only the write takes the lock, writing if the row is
// still the version that was merged. A concurrent change in between starts
// the patch again (an If-Match then answers 412), so a slow or hostile
// body never holds the lock; after maxPatchRetries lost races, 409. A
// patch that changes nothing writes nothing and takes no lock.
func (s *Server) patchOutsideLock(ctx context.Context, tenant, ifMatch string, steps patchSteps) error {
	for range maxPatchRetries {
		var read int64
		err := s.tenantTx(ctx, tenant, func(tx *store.Tx) (err error) {
			read, err = steps.read(ctx, tx)
			return err
		})
		if err != nil {
			return err
		}
		if err := checkIfMatch(ifMatch, read); err != nil {
			return err
		}
		changed, err := steps.apply()
		if err != nil || !changed {
			return err
		}
		err = s.tenantTx(ctx, tenant, func(tx *store.Tx) error {
			cur, err := steps.lock(ctx, tx)
			if err != nil {
				return err
			}
			if cur != read {
				return errChangedMeanwhile
			}
			return steps.write(ctx, tx)
		})
		if errors.Is(err, errChangedMeanwhile) {
			continue
		}
		return err
	}
	return errTooManyChanges
}

// maxPatchRetries is how often a patch is merged again after the resource
// changed between its read and its write.
const maxPatchRetries = 10

// errChangedMeanwhile: the row changed between the unlocked read a patch
// was merged on and the locked write.
var errChangedMeanwhile = errors.New("controlplane: changed since read")

var errTooManyChanges = huma.NewError(http.StatusConflict, "the resource changed concurrently too often to apply the patch; read it and retry")

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
