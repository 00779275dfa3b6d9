package dispatcher

import (
	"strings"
	"testing"
)

// Every confidential value is redacted from an answer whatever its length;
// a short one where it stands as a token, so the rest stays readable.
func TestRedactSecretsShortValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		values []string
		answer string
		want   string
	}{
		{"echoed header lines", []string{"k9Z", "7", "Qx2p"},
			"X-Pin: k9Z\r\nX-Shard: 7\r\nAuthorization: Qx2p\r\n",
			"X-Pin: [redacted]\r\nX-Shard: [redacted]\r\nAuthorization: [redacted]\r\n"},
		{"in JSON and a query", []string{"ab1", "zz"},
			`{"pin":"ab1","q":"/hook?t=zz&u=1"}`,
			`{"pin":"[redacted]","q":"/hook?t=[redacted]&u=1"}`},
		{"not inside longer words", []string{"7", "ops"},
			"order 17 from shops: 7 ops",
			"order 17 from shops: [redacted] [redacted]"},
		{"repeated and adjacent", []string{"ab"},
			"ab ab,ab abab",
			"[redacted] [redacted],[redacted] abab"},
		{"non-word edges match anywhere", []string{"-!"}, "x-!y", "x[redacted]y"},
		{"long values anywhere", []string{"s3cr3tvalue"}, "xxs3cr3tvaluexx", "xx[redacted]xx"},
		{"whsec raw key", []string{"whsec_AbC"}, "key=AbC whsec_AbC", "key=[redacted] [redacted]"},
		{"unicode neighbours", []string{"ü1"}, "äü1 ü1", "äü1 [redacted]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := string(redactSecrets([]byte(tc.answer), tc.values)); got != tc.want {
				t.Errorf("redactSecrets(%q, %q)\n got %q\nwant %q", tc.answer, tc.values, got, tc.want)
			}
		})
	}
}

// A value cut by the excerpt's limit leaves no part of it: the answer is
// read past the limit by the longest value before it is redacted.
func TestExcerptDoesNotCutASecret(t *testing.T) {
	t.Parallel()
	secret := "Zq8sEcReT-ValuE-0123456789"
	answer := strings.Repeat(".", MaxResponseExcerpt-10) + " " + secret + " tail"
	ex := readExcerpt(strings.NewReader(answer), func() []string { return []string{secret} })
	if len(ex) > MaxResponseExcerpt {
		t.Errorf("excerpt of %d bytes, want at most %d", len(ex), MaxResponseExcerpt)
	}
	if strings.Contains(ex, secret[:9]) {
		t.Errorf("excerpt ends with part of the secret: %q", ex[len(ex)-20:])
	}
}

// An answer without a body (a 204) costs no list of confidential values:
// there is nothing to redact. One with a body has them redacted.
func TestExcerptListsSecretsOnlyForABody(t *testing.T) {
	t.Parallel()
	listed := 0
	confidential := func() []string { listed++; return []string{"Zq8sEcReT-ValuE"} }
	if ex := readExcerpt(strings.NewReader(""), confidential); ex != "" || listed != 0 {
		t.Errorf("empty answer: excerpt %q, confidential values listed %d times; want \"\" and 0", ex, listed)
	}
	if ex := readExcerpt(strings.NewReader("got Zq8sEcReT-ValuE"), confidential); ex != "got [redacted]" || listed != 1 {
		t.Errorf("answer with a body: excerpt %q, listed %d times; want %q and 1", ex, listed, "got [redacted]")
	}
}
