package controlplane

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"strings"
)

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns prefix_ followed by 20 random base32 characters.
func newID(prefix string) string {
	b := make([]byte, 13)
	_, _ = rand.Read(b)
	return prefix + "_" + b32.EncodeToString(b)[:20]
}

// hashKey is how API keys are stored: SHA-256 of the whole key (keys are
// 160-bit random, so a fast hash is enough).
func hashKey(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// NewAPIKey returns a fresh plaintext API key.
func NewAPIKey() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return "exo_" + b32.EncodeToString(b)
}

// keyPrefix is the part of a key that may be shown to identify it.
func keyPrefix(key string) string {
	if len(key) > 10 {
		return key[:10]
	}
	return strings.Repeat("*", len(key))
}
