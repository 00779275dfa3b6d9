package signature

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names.
const (
	HeaderExosphere = "X-Exosphere-Signature"
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
	SecretPrefix    = "whsec_"
)

// Sentinel errors of verification.
var (
	ErrBadSecret     = errors.New("signature: secret is not whsec_<base64>")
	ErrMissingHeader = errors.New("signature: missing signature header")
	ErrBadHeader     = errors.New("signature: malformed signature header")
	ErrTooOld        = errors.New("signature: timestamp outside tolerance")
	ErrMismatch      = errors.New("signature: no signature matches")
)

// NewSecret returns a fresh whsec_ secret with a 32-byte key.
func NewSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// Key decodes a whsec_ secret into its HMAC key.
func Key(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, ErrBadSecret
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) < 16 || len(key) > 64 {
		return nil, ErrBadSecret
	}
	return key, nil
}

func mac(key []byte, parts ...string) []byte {
	h := hmac.New(sha256.New, key)
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{'.'})
		}
		h.Write([]byte(p))
	}
	return h.Sum(nil)
}

// Sign sets the signature headers of a delivery with id msgID, sent at ts,
// signed by every secret (the current one first).
//
// Signing allocates little: each secret's decoded key and HMAC state are
// kept (see signerFor) and reset per delivery, the headers are built in
// pooled buffers, and their values share one string.
func Sign(h http.Header, secrets []string, msgID string, ts time.Time, body []byte) error {
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	t := strconv.AppendInt(sc.t[:0], ts.Unix(), 10)
	id := append(sc.id[:0], msgID...)
	exo := append(append(sc.exo[:0], "t="...), t...)
	std := sc.std[:0]
	for i, s := range secrets {
		sg, err := signerFor(s)
		if err != nil {
			return err
		}
		m := sg.pool.Get().(*macState)
		exo = append(exo, ",v1="...)
		exo = hex.AppendEncode(exo, m.sum(false, nil, t, body))
		if i > 0 {
			std = append(std, ' ')
		}
		std = append(std, "v1,"...)
		std = base64.StdEncoding.AppendEncode(std, m.sum(true, id, t, body))
		sg.pool.Put(m)
	}
	sc.t, sc.id, sc.exo, sc.std = t, id, exo, std
	var all strings.Builder
	all.Grow(len(exo) + len(t) + len(std))
	all.Write(exo)
	all.Write(t)
	all.Write(std)
	v := all.String()
	exoV, tV, stdV := v[:len(exo)], v[len(exo):len(exo)+len(t)], v[len(exo)+len(t):]
	// As h.Set does (the keys are canonical already), with one backing
	// array for the four values; each value's capacity is 1, so an Add to
	// one header cannot overwrite the next.
	arr := []string{exoV, msgID, tV, stdV}
	h[canonExosphere] = arr[0:1:1]
	h[canonID] = arr[1:2:2]
	h[canonTimestamp] = arr[2:3:3]
	h[canonSignature] = arr[3:4:4]
	return nil
}

// Canonical forms of the header names, as http.Header.Set would use them.
var (
	canonExosphere = textproto.CanonicalMIMEHeaderKey(HeaderExosphere)
	canonID        = textproto.CanonicalMIMEHeaderKey(HeaderID)
	canonTimestamp = textproto.CanonicalMIMEHeaderKey(HeaderTimestamp)
	canonSignature = textproto.CanonicalMIMEHeaderKey(HeaderSignature)
)

// scratch holds Sign's buffers between calls.
type scratch struct{ t, id, exo, std []byte }

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// A signer is one secret's HMAC states, each keyed once and reset for every
// message; a pool, since deliveries are signed concurrently.
type signer struct{ pool sync.Pool }

// macState is one HMAC-SHA256 state of a key and the array its sums go to.
type macState struct {
	h   hash.Hash
	out [sha256.Size]byte
}

var dot = []byte{'.'}

// sum returns HMAC(key, "<id>.<t>.<body>") (Standard Webhooks, withID), or
// of "<t>.<body>" (Exosphere), in m's array (valid until m's next sum).
func (m *macState) sum(withID bool, id, t, body []byte) []byte {
	m.h.Reset()
	if withID {
		m.h.Write(id)
		m.h.Write(dot)
	}
	m.h.Write(t)
	m.h.Write(dot)
	m.h.Write(body)
	return m.h.Sum(m.out[:0])
}

// maxSigners bounds the signers kept; past it the cache starts over (the
// dispatcher signs with as many secrets as it has active endpoints, plus
// those in rotation).
const maxSigners = 4096

var signers struct {
	sync.RWMutex
	m map[string]*signer
}

// signerFor returns secret's signer, decoding secret on first use.
func signerFor(secret string) (*signer, error) {
	signers.RLock()
	sg := signers.m[secret]
	signers.RUnlock()
	if sg != nil {
		return sg, nil
	}
	key, err := Key(secret)
	if err != nil {
		return nil, err
	}
	sg = &signer{}
	sg.pool.New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	signers.Lock()
	defer signers.Unlock()
	if old := signers.m[secret]; old != nil {
		return old, nil
	}
	if signers.m == nil || len(signers.m) >= maxSigners {
		signers.m = make(map[string]*signer)
	}
	signers.m[secret] = sg
	return sg, nil
}

func checkTime(t string, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return ErrBadHeader
	}
	d := now.Sub(time.Unix(sec, 0))
	if d > tolerance || d < -tolerance {
		return fmt.Errorf("%w (%s)", ErrTooOld, d.Round(time.Second))
	}
	return nil
}

// VerifyStandard verifies the Standard Webhooks headers against secret.
func VerifyStandard(h http.Header, body []byte, secret string, now time.Time, tolerance time.Duration) error {
	key, err := Key(secret)
	if err != nil {
		return err
	}
	id, t, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || t == "" || sigs == "" {
		return ErrMissingHeader
	}
	if err := checkTime(t, now, tolerance); err != nil {
		return err
	}
	want := mac(key, id, t, string(body))
	for _, s := range strings.Fields(sigs) {
		v, b64, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrMismatch
}

// VerifyExosphere verifies the X-Exosphere-Signature header against secret.
func VerifyExosphere(h http.Header, body []byte, secret string, now time.Time, tolerance time.Duration) error {
	key, err := Key(secret)
	if err != nil {
		return err
	}
	v := h.Get(HeaderExosphere)
	if v == "" {
		return ErrMissingHeader
	}
	var t string
	var sigs [][]byte
	for _, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrBadHeader
		}
		switch k {
		case "t":
			t = val
		case "v1":
			if b, err := hex.DecodeString(val); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	if t == "" || len(sigs) == 0 {
		return ErrBadHeader
	}
	if err := checkTime(t, now, tolerance); err != nil {
		return err
	}
	want := mac(key, t, string(body))
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrMismatch
}
