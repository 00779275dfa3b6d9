package keyring

import (
	"errors"
	"strings"
	"testing"
)

func TestSealOpenAndRotation(t *testing.T) {
	t.Parallel()
	oldSpec := Generate("k1")
	oldRing, err := Parse(oldSpec)
	if err != nil {
		t.Fatal(err)
	}
	sealed := oldRing.Seal("whsec_secret", "acme/whk_1")
	if strings.Contains(sealed.Ciphertext, "whsec_secret") {
		t.Fatal("ciphertext contains the plaintext")
	}
	// A new key seals, the old one still opens.
	newRing, err := Parse(Generate("k2") + "," + oldSpec)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := newRing.Open(sealed, "acme/whk_1"); err != nil || got != "whsec_secret" {
		t.Fatalf("open under rotated ring = %q, %v", got, err)
	}
	if s := newRing.Seal("x", "a"); s.KeyID != "k2" {
		t.Fatalf("sealed under %q, want the first key k2", s.KeyID)
	}
	// Bound to its owner: another row's aad does not open it.
	if _, err := newRing.Open(sealed, "evil/whk_1"); !errors.Is(err, ErrOpen) {
		t.Fatalf("open with foreign aad: err = %v, want ErrOpen", err)
	}
	// A ring without the key says which key is missing.
	other, _ := Parse(Generate("k3"))
	if _, err := other.Open(sealed, "acme/whk_1"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("open with unknown key: err = %v", err)
	}
}

func TestParseRejectsBadRings(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"", "nokey", "k1:notbase64!!", "k1:c2hvcnQ=", "bad id:" + strings.Repeat("A", 44), Generate("k") + "," + Generate("k")} {
		if _, err := Parse(spec); err == nil {
			t.Errorf("Parse(%q) accepted a bad ring", spec)
		} else if strings.Contains(err.Error(), strings.TrimPrefix(spec, "k1:")) && len(spec) > 20 {
			t.Errorf("error leaks key material: %v", err)
		}
	}
}
