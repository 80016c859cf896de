package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/internal/loglevel"
	"github.com/shoal-dev/shoal/internal/statuswriter"
)

// Headers.
const (
	// KeyHeader carries the key that makes a write apply once: a unique
	// value per write (e.g. a UUID), repeated on every retry of it.
	KeyHeader = "Idempotency-Key"
	// ReplayedHeader is "true" on an answer replayed from the store.
	ReplayedHeader = "Idempotent-Replayed"
)

// MaxKeyLen is the longest key accepted, in bytes.
const MaxKeyLen = 255

// finishTimeout bounds recording an answer after the handler ran: it is
// done even if the caller has gone, since the effects happened.
const finishTimeout = 5 * time.Second

// CheckKey reports whether k is a valid key: 1 to MaxKeyLen printable
// ASCII characters, without spaces.
func CheckKey(k string) error {
	if k == "" {
		return fmt.Errorf("%s is empty: want a unique value per write (e.g. a UUID), repeated on retries", KeyHeader)
	}
	if len(k) > MaxKeyLen {
		return fmt.Errorf("%s is %d bytes long: want at most %d", KeyHeader, len(k), MaxKeyLen)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return fmt.Errorf("%s %q: want printable ASCII without spaces", KeyHeader, k)
		}
	}
	return nil
}

// Fingerprint identifies a request for its key: a key comes back only
// with the same method, path, query and body, byte for byte. Each part is
// length-prefixed, so no two different requests share the bytes hashed.
func Fingerprint(method, requestURI string, body []byte) string {
	h := sha256.New()
	var n [8]byte
	for _, part := range [][]byte{[]byte(method), []byte(requestURI), body} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Claim is a request's hold on its key while its handler runs; the
// handler finds it with FromContext. Its methods are safe to call from any
// goroutine while the handler runs.
type Claim struct {
	s         *Store
	ref       keyRef
	token     string
	completed atomic.Bool
	forgotten atomic.Bool
}

type claimKey struct{}

// FromContext returns the claim of the request whose context ctx is, or
// nil if the request came without a key (or not through Middleware).
func FromContext(ctx context.Context) *Claim {
	c, _ := ctx.Value(claimKey{}).(*Claim)
	return c
}

// Key returns the request's idempotency key.
func (c *Claim) Key() string { return c.ref.key }

// ErrClaimLost is returned by Complete when the claim is no longer the
// request's: its lease ended and another attempt took the key over (or it
// was completed already). Roll the transaction back: the other attempt's
// answer stands.
var ErrClaimLost = errors.New("idempotency: the claim on the key was lost (lease ended, another attempt took over)")

// Complete records the answer to the request in tx, the transaction that
// holds the handler's own writes: both commit, or neither. The handler then
// commits tx and writes the same answer to its ResponseWriter; the
// middleware stores nothing more (if tx was rolled back instead, it treats
// the answer as if Complete had not been called).
//
// status must be from 200 to 499: an error the caller should retry is not
// recorded. On ErrClaimLost, roll tx back. If tx is rolled back for another
// reason (a busy database), Complete may be called again in the next try.
func (c *Claim) Complete(ctx context.Context, tx *sql.Tx, status int, contentType string, body []byte) error {
	if tx == nil {
		return errors.New("idempotency: Complete: nil *sql.Tx")
	}
	if status < 200 || status >= 500 {
		return fmt.Errorf("idempotency: Complete: status %d: want 200 to 499 (roll back on errors the caller should retry)", status)
	}
	ok, err := c.s.complete(ctx, tx, c.ref, c.token, status, contentType, body)
	if err != nil {
		return err
	}
	if !ok {
		return ErrClaimLost
	}
	c.completed.Store(true)
	return nil
}

// Forget releases the key instead of recording the answer: use it for
// answers given before any effect, such as a validation error, so that
// the caller may fix the request and send it again with the same key. It
// does nothing after a committed Complete, nor on a nil Claim (a request
// without a key).
func (c *Claim) Forget() {
	if c != nil {
		c.forgotten.Store(true)
	}
}

// Middleware applies the requests with an Idempotency-Key header to next
// once per key and principal (see the package doc). Requests without the
// header, and safe methods (GET, HEAD, OPTIONS, TRACE), pass through
// untouched. It is Guarded with no authorization of its own: use it where
// whether a request is allowed depends only on who sends it (its
// principal) and what it is (method, path, body), so that a replay, which
// goes only to the same principal for the same request, is allowed
// exactly when the first answer was.
func (s *Store) Middleware(next http.Handler) http.Handler { return s.Guarded(nil, next) }

// Guarded is Middleware with authorize asked first: before the key is
// looked up, authorize decides whether r may be served at all. If not, it
// writes the refusal to w and returns false, and nothing is claimed,
// replayed or recorded, so a request that is not allowed never sees an
// answer stored for its key. Use it where authorization depends on more
// than the principal and the request, such as grants that may be revoked
// within the keys' TTL. authorize sees the request's body (read and put
// back); it runs on the request's goroutine and may block (a database
// read). A nil authorize allows every request.
func (s *Store) Guarded(authorize func(w http.ResponseWriter, r *http.Request) bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys := r.Header.Values(KeyHeader)
		if len(keys) == 0 || safeMethod(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		if len(keys) > 1 {
			shoal.WriteError(w, http.StatusBadRequest, "invalid_argument",
				fmt.Sprintf("%d %s headers: want one", len(keys), KeyHeader))
			return
		}
		key := keys[0]
		if err := CheckKey(key); err != nil {
			shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
			return
		}
		body, err := readBody(r, s.cfg.MaxBodyBytes)
		if err != nil {
			if errors.Is(err, errTooLarge) {
				shoal.WriteError(w, http.StatusRequestEntityTooLarge, "body_too_large",
					fmt.Sprintf("request body over %d bytes", s.cfg.MaxBodyBytes))
				return
			}
			shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("reading the request body: %v", err))
			return
		}
		if authorize != nil {
			if !authorize(w, r) {
				return
			}
			if r.GetBody != nil { // set by readBody for a body
				r.Body, _ = r.GetBody() // as read, for next
			}
		}
		ref := refOf(s.cfg.Principal(r), key)
		fp := Fingerprint(r.Method, r.URL.RequestURI(), body)
		deadline, _ := r.Context().Deadline()
		got, err := s.acquire(r.Context(), ref, fp, deadline)
		switch {
		case errors.Is(err, errKeyReused):
			shoal.WriteError(w, http.StatusUnprocessableEntity, "idempotency_key_reused",
				fmt.Sprintf("%s %q was already used for a different request; use a new key per write", KeyHeader, key))
			return
		case errors.Is(err, errInProgress):
			w.Header().Set("Retry-After", "1")
			shoal.WriteError(w, http.StatusConflict, "idempotency_key_in_use",
				fmt.Sprintf("a request with %s %q is still in progress; retry with the key to get its answer", KeyHeader, key))
			return
		case err != nil:
			// A caller that left (a hedge that lost) is no failure to report.
			s.log.Log(r.Context(), loglevel.Failure(r.Context()), "idempotency: claiming a key", "key", key, "err", err)
			statuswriter.MarkLogged(w)
			w.Header().Set("Retry-After", "1")
			shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the idempotency store failed; retry with the same key")
			return
		case got.answer != nil:
			replay(w, got.answer)
			return
		}
		c := &Claim{s: s, ref: ref, token: got.token}
		s.run(w, r, next, c, got.leaseUntil)
	})
}

// run serves the request under claim c and settles the claim by the answer.
func (s *Store) run(w http.ResponseWriter, r *http.Request, next http.Handler, c *Claim, leaseUntil time.Time) {
	settle := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(r.Context()), finishTimeout)
	}
	defer func() {
		if v := recover(); v != nil {
			ctx, cancel := settle()
			if _, err := s.release(ctx, c.ref, c.token); err != nil {
				s.log.Error("idempotency: releasing a key after a panic", "key", c.ref.key, "err", err)
			}
			cancel()
			panic(v)
		}
	}()
	// The handler may run no longer than its claim.
	ctx, cancel := context.WithDeadline(context.WithValue(r.Context(), claimKey{}, c), leaseUntil)
	defer cancel()
	rec := &recorder{header: w.Header()}
	next.ServeHTTP(rec, r.WithContext(ctx))

	status, body := rec.result()
	if w.Header().Get("Content-Type") == "" && len(body) > 0 {
		// What net/http would sniff, fixed now so that replays say the same.
		w.Header().Set("Content-Type", http.DetectContentType(body))
	}
	sctx, scancel := settle()
	defer scancel()
	s.settle(sctx, c, status, w.Header().Get("Content-Type"), body)
	w.WriteHeader(status)
	w.Write(body)
}

// settle records the answer to claim c, or releases it, unless a committed
// Complete already recorded it. Failures are logged: the answer is given
// anyway, and the claim then blocks retries until its lease ends.
func (s *Store) settle(ctx context.Context, c *Claim, status int, contentType string, body []byte) {
	if c.completed.Load() {
		rec, found, err := s.lookup(ctx, c.ref)
		if err != nil {
			s.log.Error("idempotency: checking a completed key", "key", c.ref.key, "err", err)
			return
		}
		if !found || rec.token != c.token || rec.status != 0 {
			return // committed (or taken over since)
		}
		// The transaction was rolled back: settle as without Complete.
	}
	var err error
	if c.forgotten.Load() || !recordable(status) {
		_, err = s.release(ctx, c.ref, c.token)
	} else {
		_, err = s.complete(ctx, nil, c.ref, c.token, status, contentType, body)
	}
	if err != nil {
		s.log.Error("idempotency: settling a key", "key", c.ref.key, "status", status, "err", err)
	}
}

// recordable reports whether an answer is final for its key. 5xx answers
// are not: the request may not have been applied, and a retry must run it.
// Nor are 408, 425 and 429, which say "not now" before doing anything.
func recordable(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return false
	}
	return status < 500
}

// replay writes the answer on record. Only its type and body were kept, so
// it tells browsers not to guess another type from the body, as WriteJSON
// does, whether or not the first answer did.
func replay(w http.ResponseWriter, rec *record) {
	if rec.contentType != "" {
		w.Header().Set("Content-Type", rec.contentType)
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set(ReplayedHeader, "true")
	w.WriteHeader(rec.status)
	w.Write(rec.body)
}

func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

var errTooLarge = errors.New("request body too large")

// readBody reads r's body whole, up to limit bytes, and puts it back for
// the handler.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > limit {
		return nil, errTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, errTooLarge
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return body, nil
}

// recorder holds the handler's answer until the claim is settled: the
// caller must not see an answer the store has not. Headers go straight to
// the real ResponseWriter's map, which sends nothing before WriteHeader.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 && status >= 200 { // 1xx are informational: dropped
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	return r.body.Write(p)
}

func (r *recorder) result() (int, []byte) {
	if r.status == 0 {
		return http.StatusOK, r.body.Bytes()
	}
	return r.status, r.body.Bytes()
}
