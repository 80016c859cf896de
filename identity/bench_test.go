package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shoal-dev/shoal/internal/cpumeter"
	"github.com/shoal-dev/shoal/internal/verified"
)

// BenchmarkHandshake measures one mutual-TLS handshake, both ends' CPU, over
// loopback TCP: a full one (ECDHE, the server's and the client's
// certificate signatures and chain verifications) and a resumed one (a
// session ticket from an earlier connection: ECDHE only). The client's
// http.Transport keeps connections alive, so a call normally pays neither;
// these are the costs of a new connection.
func BenchmarkHandshake(b *testing.B) {
	ca := newCA(b, "flix")
	bundle := bundleOf(b, ca)
	server := ServerConfig(NewSource(credsOf(b, ca, "profiles", bundle)))
	client := NewSource(credsOf(b, ca, "api", bundle))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	for _, resume := range []bool{false, true} {
		name := "full"
		if resume {
			name = "resumed"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			d := NewDialer(client, nil)
			handshake := func() bool {
				if !resume {
					d.sessions = tls.NewLRUClientSessionCache(1)
				}
				done := make(chan error, 1)
				go func() {
					s, err := ln.Accept()
					if err != nil {
						done <- err
						return
					}
					defer s.Close()
					srv := tls.Server(s, server)
					err = srv.Handshake()
					if err == nil {
						// TLS 1.3 sends tickets after the handshake: the client
						// reads them with the first byte of application data.
						_, err = srv.Write([]byte{1})
					}
					done <- err
				}()
				conn, err := d.DialService(context.Background(), "tcp", ln.Addr().String(), "profiles")
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				if _, err := io.ReadFull(conn, make([]byte, 1)); err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				return conn.ConnectionState().DidResume
			}
			handshake() // a ticket to resume with
			cpu := cpumeter.Start()
			for b.Loop() {
				if got := handshake(); got != resume {
					b.Fatalf("DidResume = %v", got)
				}
			}
			cpu.Report(b)
		})
	}
}

// BenchmarkTokenVerify measures what a service pays per request for the
// user token: a token seen before (the verifier's cache), a new token from
// a known issuer (JWT parsing and one ECDSA P-256 verification), and a new
// token from an issuer certificate not seen before (plus parsing and
// verifying that certificate). ecdsa-verify is the bare signature check,
// to show what JWT parsing adds.
func BenchmarkTokenVerify(b *testing.B) {
	ca := newCA(b, "flix")
	bundle := bundleOf(b, ca)
	gw := NewSource(credsOf(b, ca, "gateway", bundle))
	ratings := NewSource(credsOf(b, ca, "ratings", bundle))
	tokens := make([]string, 1024) // distinct subjects: distinct tokens
	for i := range tokens {
		iss, err := NewTokenIssuer(gw, 0)
		if err != nil {
			b.Fatal(err)
		}
		if tokens[i], err = iss.Token(fmt.Sprintf("p%04d", i), "jwt"); err != nil {
			b.Fatal(err)
		}
	}
	verifier := func() *TokenVerifier {
		v, err := NewTokenVerifier(ratings, "gateway")
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		v := verifier()
		if _, err := v.Verify(tokens[0]); err != nil {
			b.Fatal(err)
		}
		cpu := cpumeter.Start()
		for b.Loop() {
			if _, err := v.Verify(tokens[0]); err != nil {
				b.Fatal(err)
			}
		}
		cpu.Report(b)
	})
	b.Run("new-token", func(b *testing.B) {
		b.ReportAllocs()
		v := verifier()
		if _, err := v.Verify(tokens[0]); err != nil { // the issuer's certificate
			b.Fatal(err)
		}
		i := 0
		cpu := cpumeter.Start()
		for b.Loop() {
			i++
			if i%len(tokens) == 0 {
				v.tokens = verified.New[User](tokenCacheSize) // keep every verification a miss
			}
			if _, err := v.Verify(tokens[i%len(tokens)]); err != nil {
				b.Fatal(err)
			}
		}
		cpu.Report(b)
	})
	b.Run("new-issuer-cert", func(b *testing.B) {
		b.ReportAllocs()
		v := verifier()
		i := 0
		cpu := cpumeter.Start()
		for b.Loop() {
			i++
			v.tokens = verified.New[User](tokenCacheSize)
			clear(v.signers)
			if _, err := v.Verify(tokens[i%len(tokens)]); err != nil {
				b.Fatal(err)
			}
		}
		cpu.Report(b)
	})
	b.Run("ecdsa-verify", func(b *testing.B) {
		b.ReportAllocs()
		key := gw.Credentials().Cert.PrivateKey.(*ecdsa.PrivateKey)
		h := sha256.Sum256([]byte(tokens[0]))
		sig, err := ecdsa.SignASN1(nil, key, h[:])
		if err != nil {
			b.Fatal(err)
		}
		cpu := cpumeter.Start()
		for b.Loop() {
			if !ecdsa.VerifyASN1(&key.PublicKey, h[:], sig) {
				b.Fatal("no")
			}
		}
		cpu.Report(b)
	})
}

// BenchmarkTokenIssue: the gateway's cost per request, a cached token, and
// per new token (one ECDSA P-256 signature).
func BenchmarkTokenIssue(b *testing.B) {
	ca := newCA(b, "flix")
	gw := NewSource(credsOf(b, ca, "gateway", bundleOf(b, ca)))
	iss, err := NewTokenIssuer(gw, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		cpu := cpumeter.Start()
		for b.Loop() {
			if _, err := iss.Token("p0001", "jwt"); err != nil {
				b.Fatal(err)
			}
		}
		cpu.Report(b)
	})
	b.Run("sign", func(b *testing.B) {
		b.ReportAllocs()
		cpu := cpumeter.Start()
		for b.Loop() {
			clear(iss.cache)
			if _, err := iss.Token("p0001", "jwt"); err != nil {
				b.Fatal(err)
			}
		}
		cpu.Report(b)
	})
}

// BenchmarkRoundTrip: one request and response on a kept-alive loopback
// connection, plain HTTP against mutual TLS (handshake amortised away):
// the per-call cost of encryption, the part of mTLS every call pays.
func BenchmarkRoundTrip(b *testing.B) {
	ca := newCA(b, "flix")
	bundle := bundleOf(b, ca)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"ok":true}`) })
	for _, mtls := range []bool{false, true} {
		name := "plain"
		if mtls {
			name = "mtls"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			srv := httptest.NewUnstartedServer(handler)
			tr := &http.Transport{}
			url := "http://"
			if mtls {
				srv.TLS = ServerConfig(NewSource(credsOf(b, ca, "profiles", bundle)))
				srv.StartTLS()
				tr.DialTLSContext = NewDialer(NewSource(credsOf(b, ca, "api", bundle)), nil).ForService("profiles")
				url = "https://"
			} else {
				srv.Start()
			}
			defer srv.Close()
			defer tr.CloseIdleConnections()
			url += srv.Listener.Addr().String() + "/"
			cpu := cpumeter.Start()
			for b.Loop() {
				resp, err := tr.RoundTrip(must(http.NewRequest(http.MethodGet, url, nil)))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			cpu.Report(b)
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
