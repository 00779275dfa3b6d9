// One delivery attempt: the HTTP client and request, the classification of
// its answer or error, and the redaction of secrets from what is kept of it.

package dispatcher

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/exospherehost/exo-alerts/internal/ssrf"
	"github.com/exospherehost/exo-alerts/schemas"
	"github.com/exospherehost/exo-alerts/signature"
)

func newTransport(guard *ssrf.Guard) *http.Transport {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: guard.Control}
	return &http.Transport{
		Proxy:               nil, // a proxy would bypass the dial-time guard
		DialContext:         dialer.DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256, // many endpoints may share one host (e.g. hooks.slack.com)
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
		// A hostile endpoint gets 64 KiB of answer headers, not Go's 10 MiB.
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// send makes one request through the transport, as an http.Client whose
// CheckRedirect refuses every redirect would: a redirect is never
// followed (a 3xx is the attempt's answer), and the client's Do copied
// every request's headers for the next hop it would never take (~2 µs per
// attempt). What Do adds is kept: Basic auth from user info in the target
// URL when the endpoint sets no Authorization of its own, Do's answer to a
// plain-HTTP reply on a TLS connection, and errors wrapped in a
// *url.Error (redact drops its URL).
func (d *Dispatcher) send(req *http.Request) (*http.Response, error) {
	if u := req.URL.User; u != nil && req.Header.Get("Authorization") == "" {
		password, _ := u.Password()
		req.SetBasicAuth(u.Username(), password)
	}
	resp, err := d.transport.RoundTrip(req)
	if err != nil {
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) && string(rh.RecordHeader[:]) == "HTTP/" {
			err = http.ErrSchemeMismatch
		}
		return nil, &url.Error{Op: "Post", URL: req.URL.Redacted(), Err: err}
	}
	return resp, nil
}

// opened keeps what the key ring opened for attempts (secrets, sealed
// URLs, header values), so that an endpoint's attempts after the first
// skip the base64 decoding and AES-GCM opening (~1 µs and four
// allocations each). A value is found only under its key id, ciphertext
// and AAD together, the three that decide what Open returns: a ciphertext
// moved to another endpoint (another AAD) is opened, and refused, anew.
// Failures are not kept. (Package signature keeps each secret in clear
// too, as the key of its signer.)
type opened struct {
	mu sync.RWMutex
	m  map[openedKey]string
}

type openedKey struct{ keyID, ciphertext, aad string }

// maxOpened bounds the values kept; past it the cache starts over.
const maxOpened = 4096

// open returns the key ring's opening of s under aad.
func (d *Dispatcher) open(s schemas.Sealed, aad string) (string, error) {
	k := openedKey{s.KeyID, s.Ciphertext, aad}
	d.opened.mu.RLock()
	v, ok := d.opened.m[k]
	d.opened.mu.RUnlock()
	if ok {
		return v, nil
	}
	v, err := d.cfg.Keyring.Open(s, aad)
	if err != nil {
		return "", err
	}
	d.opened.mu.Lock()
	if d.opened.m == nil || len(d.opened.m) >= maxOpened {
		d.opened.m = make(map[openedKey]string)
	}
	d.opened.m[k] = v
	d.opened.mu.Unlock()
	return v, nil
}

// attempt is what one HTTP attempt gave.
type attempt struct {
	outcome    string
	statusCode int
	errClass   string
	err        string
	excerpt    string
	latency    time.Duration
	retryAfter time.Duration // from a 429 or 503 answer
}

// attempt performs one HTTP attempt of del, whose endpoint's table key is
// key, bounded by clock (its worker's: AttemptTimeout). The endpoint is
// looked up again here, not taken from before the attempt waited for its
// lane: it may have changed (deactivated, rotated) meanwhile.
func (d *Dispatcher) attempt(ctx context.Context, clock *attemptClock, del *schemas.DeliveryRecord, key, deliveryID string) attempt {
	ep, ok := d.endpoints.Get(key)
	if !ok {
		// An endpoint created a moment ago may not have reached this table
		// yet: catch up with the topic before calling it gone.
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := d.endpoints.Sync(sctx); err != nil && ctx.Err() == nil {
			d.log.Warn("endpoint table not caught up", "err", err)
		}
		cancel()
		ep, ok = d.endpoints.Get(key)
	}
	if !ok || !ep.IsActive {
		return attempt{outcome: schemas.OutcomeDead, errClass: "endpoint_inactive", err: "endpoint deleted or inactive"}
	}
	aad := schemas.SecretAAD(ep.TenantID, ep.ID)
	secret, err := d.open(ep.Secret, aad)
	if err != nil {
		return attempt{outcome: schemas.OutcomeDead, errClass: "secret", err: err.Error()}
	}
	secrets := []string{secret}
	if ep.PreviousSecret != nil && ep.PreviousSecretExpiresAt != nil && time.Now().Before(*ep.PreviousSecretExpiresAt) {
		// Rotation grace period: the old secret signs too, so receivers that
		// still hold it keep verifying.
		if prev, err := d.open(*ep.PreviousSecret, aad); err == nil {
			secrets = append(secrets, prev)
		} else {
			d.log.Warn("previous secret does not open; signing with the current one only", "endpoint_id", ep.ID, "err", err)
		}
	}
	msg, err := render(ep.Kind, del, secret, d.cfg.Links)
	if err != nil {
		return attempt{outcome: schemas.OutcomeDead, errClass: "render", err: err.Error()}
	}
	body := msg.body
	target := ep.TargetURL
	if ep.TargetURLSealed != nil {
		// The URL carries a credential (Slack): the snapshot shows a masked
		// form and seals the real one.
		if target, err = d.open(*ep.TargetURLSealed, schemas.TargetURLAAD(ep.TenantID, ep.ID)); err != nil {
			return attempt{outcome: schemas.OutcomeDead, errClass: "secret", err: "target url: " + err.Error()}
		}
	}
	actx := clock.start()
	defer clock.stop()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return attempt{outcome: schemas.OutcomeDead, errClass: "bad_url", err: "target URL does not parse"}
	}
	// Room for every header at once: ours (four, and four signature
	// headers) and the endpoint's own.
	req.Header = make(http.Header, len(ep.Headers)+8)
	var headerValues []string
	for name, sealed := range ep.Headers {
		v, err := d.open(sealed, schemas.HeaderAAD(ep.TenantID, ep.ID, name))
		if err != nil {
			return attempt{outcome: schemas.OutcomeDead, errClass: "secret", err: "header " + name + ": " + err.Error()}
		}
		req.Header.Set(name, v)
		headerValues = append(headerValues, v)
	}
	// What a receiver might echo back that must not reach the result (and
	// from there Postgres and the history API). Listed only for an answer
	// that has a body: most have none (204), and the list costs a dozen
	// allocations per attempt.
	confidential := func() []string {
		out := append(slices.Clone(secrets), urlSecrets(req.URL, ep.TargetURLSealed != nil)...)
		return append(out, headerValues...)
	}
	// As req.Header.Set would (over an endpoint header of the same name),
	// the names canonical already and the values in one backing array;
	// each value's capacity is 1, so an Add to one cannot overwrite the next.
	ours := []string{"application/json", "exosphere-alerts/" + Version, del.EventType, deliveryID}
	req.Header["Content-Type"] = ours[0:1:1]
	req.Header["User-Agent"] = ours[1:2:2]
	req.Header["X-Exosphere-Event"] = ours[2:3:3]
	req.Header["X-Exosphere-Delivery"] = ours[3:4:4]
	if msg.sign {
		if err := signature.Sign(req.Header, secrets, del.AlertID, time.Now(), body); err != nil {
			return attempt{outcome: schemas.OutcomeDead, errClass: "secret", err: err.Error()}
		}
	}
	start := time.Now()
	resp, err := d.send(req)
	lat := time.Since(start)
	if err != nil {
		class, outcome := classify(err), schemas.OutcomeRetry
		if class == "ssrf_refused" {
			outcome = schemas.OutcomeDead // permanent: retrying cannot change where the host points
		}
		return attempt{outcome: outcome, errClass: class, err: redact(err), latency: lat}
	}
	excerpt := readExcerpt(resp.Body, confidential)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	a := attempt{statusCode: resp.StatusCode, excerpt: excerpt, latency: lat}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		a.outcome = schemas.OutcomeDelivered
	case resp.StatusCode == http.StatusGone || resp.StatusCode == http.StatusNotFound:
		a.outcome, a.errClass = schemas.OutcomeEndpointGone, "http_"+strconv.Itoa(resp.StatusCode)
	default:
		a.outcome, a.errClass = schemas.OutcomeRetry, "http_"+strconv.Itoa(resp.StatusCode)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		a.retryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return a
}

// readExcerpt reads the start of an answer and redacts the confidential
// values (listed by confidential, called only if the answer has a body)
// from it. It reads past the excerpt by the longest value: a value that
// starts within the excerpt is then read whole and redacted, not cut by the
// limit and left in part.
func readExcerpt(body io.Reader, confidential func() []string) string {
	var first [1]byte
	if n, _ := io.ReadFull(body, first[:]); n == 0 {
		return "" // no body: nothing to keep, nothing to redact
	}
	values := confidential()
	longest := 0
	for _, v := range values {
		longest = max(longest, len(v))
	}
	rest, _ := io.ReadAll(io.LimitReader(body, int64(MaxResponseExcerpt+longest-1)))
	b := append(first[:], rest...)
	return excerptOf(redactSecrets(b, values))
}

// minAnywhere is the length from which a confidential value is redacted
// wherever it occurs in an answer. A shorter one (a 4-digit PIN, a header
// "X-Team: ops") is redacted only where it stands as a whole token, not
// inside a longer word or number: the receiver that echoes it echoes it
// between delimiters (a header line, quotes, a query), while replacing
// every "1" or "ops" inside other words would leave the excerpt unreadable.
const minAnywhere = 6

// redactSecrets replaces, in an answer, every occurrence of the values
// (secrets, header values, URL credentials) with [redacted], whatever
// their length (see minAnywhere): a receiver that echoes its request must
// not put them into the delivery history.
func redactSecrets(b []byte, values []string) []byte {
	var olds []string
	for _, v := range values {
		if v == "" {
			continue
		}
		olds = append(olds, v)
		if raw, ok := strings.CutPrefix(v, "whsec_"); ok && raw != "" {
			olds = append(olds, raw)
		}
	}
	// Longest first: a value containing another is replaced whole.
	slices.SortFunc(olds, func(a, b string) int { return len(b) - len(a) })
	for _, o := range olds {
		if len(o) >= minAnywhere {
			b = bytes.ReplaceAll(b, []byte(o), redacted)
			continue
		}
		b = replaceTokens(b, []byte(o))
	}
	return b
}

var redacted = []byte("[redacted]")

// replaceTokens replaces the occurrences of v in b that are not part of a
// longer word: a word character (letter, digit) at an edge of v may not
// have a word character beside it.
func replaceTokens(b, v []byte) []byte {
	first, _ := utf8.DecodeRune(v)
	last, _ := utf8.DecodeLastRune(v)
	var out []byte
	rest := b
	for {
		i := bytes.Index(rest, v)
		if i < 0 {
			break
		}
		before, _ := utf8.DecodeLastRune(rest[:i])
		if len(out) > 0 && i == 0 {
			before, _ = utf8.DecodeLastRune(out)
		}
		after, _ := utf8.DecodeRune(rest[i+len(v):])
		whole := (!isWord(first) || i+len(out) == 0 || !isWord(before)) && (!isWord(last) || i+len(v) >= len(rest) || !isWord(after))
		if whole {
			out = append(append(out, rest[:i]...), redacted...)
		} else {
			out = append(out, rest[:i+len(v)]...)
		}
		rest = rest[i+len(v):]
	}
	if out == nil {
		return b
	}
	return append(out, rest...)
}

func isWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// urlSecrets are the parts of a target URL that may be credentials: query
// values, user info and the whole path always (a receiver echoing its
// request line shows them); each path segment too when the URL was sealed
// for carrying a credential in its path (Slack, Discord, Teams tokens).
func urlSecrets(u *url.URL, sealed bool) []string {
	out := []string{u.String(), u.EscapedPath(), u.Path, u.RequestURI()}
	for _, vs := range u.Query() {
		out = append(out, vs...)
	}
	if u.User != nil {
		p, _ := u.User.Password()
		out = append(out, u.User.Username(), p)
	}
	if sealed {
		out = append(out, strings.Split(u.Path, "/")...)
	}
	return out
}

// excerptOf turns the start of an answer into valid UTF-8 of at most
// MaxResponseExcerpt bytes: a replacement character is 3 bytes, so one for a
// rune cut by the read limit (or for stray bytes) would make it longer.
func excerptOf(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	for len(s) > MaxResponseExcerpt {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, ssrf.ErrRefused):
		return "ssrf_refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			return "dns"
		}
		return "connection"
	}
}

// redact removes the URL (which may carry tokens in its path or query) from an error.
func redact(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + " [redacted url]: " + ue.Err.Error()
	}
	return err.Error()
}
