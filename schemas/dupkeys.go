package schemas

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// duplicateMember returns the location of the first object member whose
// name repeats a previous member of the same object, or nil.
//
// Decoders disagree on duplicate names: the schema validator (a map) sees
// the last one, while encoding/json decoding into a struct also type-checks
// the earlier ones, and other languages may keep the first. A document the
// schema accepted could then decode differently, or not at all, so
// duplicates are refused (RFC 8259 says names SHOULD be unique; I-JSON says
// MUST).
//
// doc must be well-formed JSON (it has been decoded already); the scan does
// not re-check the grammar.
func duplicateMember(doc []byte) []string {
	stack := make([]dupFrame, 0, 8)
	expectName := false
	for i := 0; i < len(doc); i++ {
		switch doc[i] {
		case '{':
			stack = append(stack, dupFrame{obj: true})
			expectName = true
		case '[':
			stack = append(stack, dupFrame{})
			expectName = false
		case '}', ']':
			stack = stack[:len(stack)-1]
			expectName = false
		case ',':
			top := &stack[len(stack)-1]
			if top.obj {
				expectName = true
			} else {
				top.index++
			}
		case '"':
			end, escaped := i+1, false
			for ; doc[end] != '"'; end++ {
				if doc[end] == '\\' {
					escaped = true
					end++
				}
			}
			if expectName {
				expectName = false
				top := &stack[len(stack)-1]
				raw := doc[i+1 : end]
				if escaped || !utf8.Valid(raw) {
					// Compare names as decoded: "\u0061" == "a", and
					// invalid UTF-8 decodes to U+FFFD.
					var s string
					_ = json.Unmarshal(doc[i:end+1], &s)
					raw = []byte(s)
				}
				if top.seen(raw) {
					loc := make([]string, 0, len(stack))
					for _, f := range stack[:len(stack)-1] {
						if f.obj {
							loc = append(loc, string(f.name))
						} else {
							loc = append(loc, strconv.Itoa(f.index))
						}
					}
					return append(loc, string(raw))
				}
				top.name = raw
			}
			i = end
		}
	}
	return nil
}

// dupFrame is one open object or array during the scan.
type dupFrame struct {
	obj   bool
	names [][]byte            // member names so far, while few
	set   map[string]struct{} // member names so far, once many
	name  []byte              // name of the current member
	index int                 // index of the current array element
}

// seen reports whether name was already a member of the object, and
// records it.
func (f *dupFrame) seen(name []byte) bool {
	const few = 16
	if f.set != nil {
		if _, ok := f.set[string(name)]; ok {
			return true
		}
		f.set[string(name)] = struct{}{}
		return false
	}
	for _, n := range f.names {
		if bytes.Equal(n, name) {
			return true
		}
	}
	if len(f.names) < few {
		f.names = append(f.names, name)
		return false
	}
	f.set = make(map[string]struct{}, 2*few)
	for _, n := range f.names {
		f.set[string(n)] = struct{}{}
	}
	f.set[string(name)] = struct{}{}
	f.names = nil
	return false
}
