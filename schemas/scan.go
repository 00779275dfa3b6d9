package schemas

import (
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// pass is a one-pass reader of a JSON document for the fast decoders: it
// checks the grammar as it goes (it is the only reader of the bytes on the
// fast path) and hands out member names and values for the caller to check
// against a schema and store. Every method reports false for what it does not
// vouch for — bad grammar, repeated member names (which the schema path
// refuses), and also valid JSON it chooses not to handle (invalid UTF-8,
// which encoding/json would replace; escaped member names, which would need
// decoding to be compared; nesting deeper than maxSkipDepth) — and the
// caller then leaves the document to the schema validator, which gives the
// answer and its message. So a false is never an error by itself.
type pass struct {
	b []byte
	i int
	// seen records the members met, one bit each (per decoder's constants):
	// required ones are checked at the end, and a bit met twice is a
	// duplicate member, which the schema path refuses.
	seen uint64
	// buf holds a string's decoded text while it is checked or converted;
	// it is allocated only by strings with escapes.
	buf []byte
}

// maxSkipDepth bounds the nesting of the values the fast decoders skip
// (unknown members of an event's data); deeper ones go to the validator.
const maxSkipDepth = 32

// nameSet holds the member names of one object met so far, to find a
// repeated one (which the schema path refuses). The first few are compared
// pairwise on the stack; an object with more gets a map.
type nameSet struct {
	few  [16][]byte
	n    int
	many map[string]struct{}
}

// add records name; false when it was there already.
func (s *nameSet) add(name []byte) bool {
	if s.many != nil {
		if _, ok := s.many[string(name)]; ok {
			return false
		}
		s.many[string(name)] = struct{}{}
		return true
	}
	for _, prev := range s.few[:s.n] {
		if string(prev) == string(name) {
			return false
		}
	}
	if s.n < len(s.few) {
		s.few[s.n] = name
		s.n++
		return true
	}
	s.many = make(map[string]struct{}, 2*len(s.few))
	for _, prev := range s.few {
		s.many[string(prev)] = struct{}{}
	}
	s.many[string(name)] = struct{}{}
	return true
}

func (p *pass) ws() {
	// Anything above a space ends white space: one comparison for most bytes.
	for p.i < len(p.b) && p.b[p.i] <= ' ' {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, or 0 at the end.
func (p *pass) peek() byte {
	p.ws()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// end reports whether only white space is left.
func (p *pass) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// set records member bit; false when it was already recorded (a duplicate).
func (p *pass) set(bit uint64) bool {
	if p.seen&bit != 0 {
		return false
	}
	p.seen |= bit
	return true
}

// str consumes a string at p.i (after white space) and returns its raw
// content between the quotes; escaped reports a backslash in it. It checks
// the grammar of the string (no control characters, valid escapes) and that
// its bytes are valid UTF-8.
func (p *pass) str() (raw []byte, escaped, ok bool) {
	if p.peek() != '"' {
		return nil, false, false
	}
	start := p.i + 1
	i := start
	b := p.b
	for i < len(b) {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i == len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			p.i = i + 1
			return b[start:i], escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return nil, false, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || hex4(b[i+2:i+6]) < 0 {
					return nil, false, false
				}
				i += 6
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, false, false
			}
			i += n
		}
	}
	return nil, false, false
}

// plain marks the bytes a string's scan passes over without a look: ASCII
// that is neither a quote, a backslash nor a control character.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hex4 returns the value of four hex digits, or -1.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// unescape appends the text of raw, a string's content that str accepted,
// to dst, as encoding/json decodes it: a surrogate that is not half of a
// valid pair becomes U+FFFD.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2 = hex4(raw[i+2:])
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

// text returns the decoded text of a string str accepted: raw itself, or
// its unescaped form in p.buf (valid until the next call).
func (p *pass) text(raw []byte, escaped bool) []byte {
	if !escaped {
		return raw
	}
	if cap(p.buf) < len(raw) {
		// The text is never longer than its escaped form.
		p.buf = make([]byte, 0, max(len(raw), 64))
	}
	p.buf = unescape(p.buf[:0], raw)
	return p.buf
}

// string consumes a string and returns it as a Go string (one allocation,
// none for the empty string).
func (p *pass) string() (string, bool) {
	raw, escaped, ok := p.str()
	if !ok {
		return "", false
	}
	return string(p.text(raw, escaped)), true
}

// literal consumes the literal word (true, false or null) at p.i.
func (p *pass) literal(word string) bool {
	if len(p.b)-p.i < len(word) || string(p.b[p.i:p.i+len(word)]) != word {
		return false
	}
	p.i += len(word)
	return true
}

// null consumes a null if one is next.
func (p *pass) null() bool {
	return p.peek() == 'n' && p.literal("null")
}

// number consumes a JSON number and returns its literal.
func (p *pass) number() ([]byte, bool) {
	p.ws()
	b, start := p.b, p.i
	i := start
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	p.i = i
	return b[start:i], true
}

// int64 consumes a number written as an integer (no fraction or exponent:
// the schemas' int32/int64 formats, and what encoding/json decodes into a Go
// integer) that fits in an int64.
func (p *pass) int64() (int64, bool) {
	lit, ok := p.number()
	if !ok {
		return 0, false
	}
	neg := lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	if len(lit) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range lit {
		if c < '0' || c > '9' {
			return 0, false // a fraction or an exponent
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<63-1 {
		return 0, false // -1<<63 is valid but not worth a branch
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

// members consumes an object, calling fn for each member with p.i at the
// member's value; fn consumes the value. Member names are passed raw: a name
// with an escape is not vouched for.
func (p *pass) members(fn func(name []byte) bool) bool {
	return p.object(func(name []byte, escaped bool) bool {
		return !escaped && fn(name)
	})
}

// object consumes an object, calling fn for each member with its raw name
// and p.i at the member's value; fn consumes the value.
func (p *pass) object(fn func(name []byte, escaped bool) bool) bool {
	if p.peek() != '{' {
		return false
	}
	p.i++
	if p.peek() == '}' {
		p.i++
		return true
	}
	for {
		name, escaped, ok := p.str()
		if !ok || p.peek() != ':' {
			return false
		}
		p.i++
		if !fn(name, escaped) {
			return false
		}
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// skip consumes any value, checking its grammar and that its objects have
// no duplicate member names.
func (p *pass) skip(depth int) bool {
	switch c := p.peek(); c {
	case '"':
		_, _, ok := p.str()
		return ok
	case 't':
		return p.literal("true")
	case 'f':
		return p.literal("false")
	case 'n':
		return p.literal("null")
	case '{':
		if depth >= maxSkipDepth {
			return false
		}
		var names nameSet
		return p.members(func(name []byte) bool {
			if !names.add(name) {
				return false
			}
			return p.skip(depth + 1)
		})
	case '[':
		if depth >= maxSkipDepth {
			return false
		}
		p.i++
		if p.peek() == ']' {
			p.i++
			return true
		}
		for {
			if !p.skip(depth + 1) {
				return false
			}
			switch p.peek() {
			case ',':
				p.i++
			case ']':
				p.i++
				return true
			default:
				return false
			}
		}
	default:
		_, ok := p.number()
		return ok
	}
}

// scalar consumes a string (without an escaped NUL), number, boolean or null.
func (p *pass) scalar() bool {
	switch p.peek() {
	case '"':
		raw, escaped, ok := p.str()
		// A NUL is refused (the schemas' pattern); only an escape can
		// write one in valid JSON. Over-matching (\\u0000) only sends the
		// document to the validator.
		return ok && (!escaped || !containsNULEscape(raw))
	case '{', '[':
		return false
	}
	return p.skip(0)
}

func containsNULEscape(raw []byte) bool {
	for i := 0; i+6 <= len(raw); i++ {
		if string(raw[i:i+6]) == `\u0000` {
			return true
		}
	}
	return false
}

// time consumes a string that is a timestamp of the schemas and returns it
// as encoding/json decodes it. A timestamp with an escape is not vouched for
// (encoding/json's time decoding does not read escapes).
func (p *pass) time() (time.Time, bool) {
	raw, escaped, ok := p.str()
	if !ok || escaped || !timestampValid(raw) {
		return time.Time{}, false
	}
	return parseTimestamp(raw, p.b[p.i-len(raw)-2:p.i])
}

// parseTimestamp returns the time of raw, a timestamp timestampValid
// accepted; quoted is raw with its quotes. The common form, in UTC ("Z"), is
// read by hand; an offset goes through time.Time's own JSON decoding, which
// picks the location (time.Local when the offset is Local's, else a fixed
// zone) exactly as encoding/json's decoding does.
func parseTimestamp(raw, quoted []byte) (time.Time, bool) {
	if raw[len(raw)-1] != 'Z' {
		var t time.Time
		return t, t.UnmarshalJSON(quoted) == nil
	}
	nsec := 0
	if raw[19] == '.' {
		digits := 0
		for _, c := range raw[20 : len(raw)-1] {
			nsec = nsec*10 + int(c-'0')
			digits++
		}
		for ; digits < 9; digits++ {
			nsec *= 10
		}
	}
	year := int(raw[0]-'0')*1000 + int(raw[1]-'0')*100 + num2(raw[2:])
	return time.Date(year, time.Month(num2(raw[5:])), num2(raw[8:]), num2(raw[11:]), num2(raw[14:]), num2(raw[17:]), nsec, time.UTC), true
}
