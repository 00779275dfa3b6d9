// Package keyring encrypts secrets at rest with AES-256-GCM under a ring of
// keys. Every ciphertext carries the id of the key that sealed it; the first
// key of the ring seals, every key opens, so keys can be rotated. It must
// never log or return key material or plaintext in errors.
package keyring
