package signature

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
func Sign(h http.Header, secrets []string, msgID string, ts time.Time, body []byte) error {
	t := strconv.FormatInt(ts.Unix(), 10)
	var exo = []string{"t=" + t}
	var std []string
	for _, s := range secrets {
		key, err := Key(s)
		if err != nil {
			return err
		}
		exo = append(exo, "v1="+hex.EncodeToString(mac(key, t, string(body))))
		std = append(std, "v1,"+base64.StdEncoding.EncodeToString(mac(key, msgID, t, string(body))))
	}
	h.Set(HeaderExosphere, strings.Join(exo, ","))
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, t)
	h.Set(HeaderSignature, strings.Join(std, " "))
	return nil
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
