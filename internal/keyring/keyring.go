package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/exospherehost/exo-alerts/schemas"
)

// Sentinel errors callers branch on.
var (
	ErrUnknownKey = errors.New("keyring: unknown key id")
	ErrOpen       = errors.New("keyring: ciphertext does not open")
)

var idRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,32}$`)

// Ring is an ordered set of AES-256 keys; the first one seals.
type Ring struct {
	primary string
	aeads   map[string]cipher.AEAD
}

// Parse reads a ring written as "id1:base64key1,id2:base64key2" (standard
// base64 of 32 random bytes each). The first key seals.
func Parse(spec string) (*Ring, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New("keyring: empty key ring (want id:base64-32-byte-key[,id:key...])")
	}
	r := &Ring{aeads: map[string]cipher.AEAD{}}
	var problems []string
	for i, part := range strings.Split(spec, ",") {
		id, b64, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok || !idRE.MatchString(id) {
			problems = append(problems, fmt.Sprintf("entry %d: want id:base64key with an id of [a-zA-Z0-9_-]{1,32}", i+1))
			continue
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(key) != 32 {
			problems = append(problems, fmt.Sprintf("key %q: want standard base64 of exactly 32 bytes", id))
			continue
		}
		if _, dup := r.aeads[id]; dup {
			problems = append(problems, fmt.Sprintf("key %q appears twice", id))
			continue
		}
		block, _ := aes.NewCipher(key) // 32 bytes: cannot fail
		aead, _ := cipher.NewGCM(block)
		r.aeads[id] = aead
		if r.primary == "" {
			r.primary = id
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("keyring: %s", strings.Join(problems, "; "))
	}
	return r, nil
}

// Generate returns a ring spec with one fresh random key named id.
func Generate(id string) string {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return id + ":" + base64.StdEncoding.EncodeToString(key)
}

// PrimaryID is the id of the key that seals.
func (r *Ring) PrimaryID() string { return r.primary }

// Seal encrypts plaintext under the primary key. aad binds the ciphertext to
// its owner (e.g. tenant/endpoint id), so a value copied to another row does
// not open.
func (r *Ring) Seal(plaintext, aad string) schemas.Sealed {
	aead := r.aeads[r.primary]
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	out := aead.Seal(nonce, nonce, []byte(plaintext), []byte(aad))
	return schemas.Sealed{KeyID: r.primary, Ciphertext: base64.StdEncoding.EncodeToString(out)}
}

// Open decrypts a sealed value.
func (r *Ring) Open(s schemas.Sealed, aad string) (string, error) {
	aead, ok := r.aeads[s.KeyID]
	if !ok {
		return "", fmt.Errorf("%w %q", ErrUnknownKey, s.KeyID)
	}
	raw, err := base64.StdEncoding.DecodeString(s.Ciphertext)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return "", ErrOpen
	}
	pt, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(aad))
	if err != nil {
		return "", ErrOpen
	}
	return string(pt), nil
}
