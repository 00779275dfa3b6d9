package dispatcher

import (
	"errors"
	"testing"

	"github.com/exospherehost/exo-alerts/internal/keyring"
)

// What the dispatcher keeps of opened secrets never lets a sealed value
// open where the key ring would refuse it: a secret copied to another
// endpoint (another AAD) is refused after it opened for its own endpoint,
// and a value that did not open is refused again, not remembered.
func TestOpenedKeepsOnlyWhatTheRingOpens(t *testing.T) {
	t.Parallel()
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	d := &Dispatcher{cfg: Config{Keyring: ring}}
	sealed := ring.Seal("whsec_secret", "t1/whk_a")
	for range 2 { // opened, then found
		if v, err := d.open(sealed, "t1/whk_a"); err != nil || v != "whsec_secret" {
			t.Fatalf("open for its own endpoint = %q, %v; want the secret", v, err)
		}
	}
	for range 2 {
		if v, err := d.open(sealed, "t1/whk_b"); !errors.Is(err, keyring.ErrOpen) || v != "" {
			t.Fatalf("open for another endpoint = %q, %v; want %v", v, err, keyring.ErrOpen)
		}
	}
	other, err := keyring.Parse(keyring.Generate("k2"))
	if err != nil {
		t.Fatal(err)
	}
	foreign := other.Seal("whsec_other", "t1/whk_a")
	if _, err := d.open(foreign, "t1/whk_a"); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Fatalf("open of a key the ring lacks: %v; want %v", err, keyring.ErrUnknownKey)
	}
}
