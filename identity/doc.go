// Package identity says who is calling: every instance of a Shoal system
// holds a short-lived certificate naming its service, issued by a CA of the
// system's own, and every call between services is mutual TLS, so that
//
//   - the client knows the instance it reached is the service it asked for
//     (a forged or stale discovery record cannot redirect a call: the
//     handshake fails before a request byte is sent), and
//   - the server knows which service called, and refuses calls from outside
//     the system or from services its [Policy] does not allow.
//
// End users travel between services as user tokens: short-lived JWTs the
// gateway signs with its own certificate key after it has verified the
// user's credentials, never as a bare header a caller could forge.
//
// # Names
//
// Identities follow the SPIFFE naming model: spiffe://<system>/<service>
// ([ID]), where the system (the manifest's name) is the trust domain. A
// certificate carries the ID as its one URI SAN and the service name as its
// DNS SAN.
//
// # Keys and files
//
// An [Authority] keeps the system's CA in a directory (the supervisor uses
// .shoal/identity/: ca.pem, ca-key.pem 0600, bundle.pem) and issues each
// instance a certificate (24 h by default) written as cert.pem and key.pem
// (0600), atomically. A process learns its files from SHOAL_IDENTITY_CERT,
// SHOAL_IDENTITY_KEY and SHOAL_IDENTITY_BUNDLE ([FilesFromEnv]); any program
// can use them, not only SDK programs: a `command:` program serves with
// cert.pem and key.pem, requires client certificates from bundle.pem, and
// calls a service the way curl does with
//
//	curl --cacert "$SHOAL_IDENTITY_BUNDLE" --cert "$SHOAL_IDENTITY_CERT" --key "$SHOAL_IDENTITY_KEY" \
//	     --resolve profiles:8081:127.0.0.1 https://profiles:8081/me
//
// (the service name is the certificate's DNS name). The authority renews a certificate
// once two thirds of its life have passed ([Authority.Renew]), and rotates
// its CA in three steps with an overlap during which both CAs are trusted
// ([Authority.Rotate], [Authority.Promote], [Authority.Prune], or all of
// them when due with [Authority.Maintain]).
//
// A [Source] holds a process's current [Credentials] and re-reads its files
// when they change ([Source.Run] polls every [PollInterval]), so renewal and
// CA rotation need no restart.
//
// # Wiring (what each part of Shoal does with this package)
//
// Supervisor (`shoal up`): OpenAuthority(".shoal/identity", manifest name);
// for each instance IssueFiles(service, dir, 0) and pass Files.Env() to the
// process; call Renew for each running instance and Maintain periodically
// (every minute is plenty). Its own calls (health checks, the agent of
// `command:` programs) use Authority.Credentials in a NewSource.
//
// SDK server: src := LoadSource(FilesFromEnv(os.Getenv)), go src.Run(ctx);
// http.Server.TLSConfig = ServerConfig(src), ServeTLS(ln, "", ""); wrap the
// handler (event inboxes included) in a [Guard] with the manifest's Policy
// and a [TokenVerifier] naming the gateway services as issuers. Admin
// endpoints (health, metrics) belong on a separate listener.
//
// SDK client: one http.Transport per called service, with DialTLSContext =
// NewDialer(src, dial).ForService(service) and https:// URLs to the
// instance address (see [Dialer] for why one transport per service). Every
// outgoing request made while serving one calls ForwardUser(ctx, header).
//
// Gateway: after verifying a request's credentials, set UserTokenHeader to
// TokenIssuer.Token(subject, auth) and strip the incoming Authorization,
// API key and any UserTokenHeader; call services through the SDK client.
//
// # Costs
//
// Keep-alive makes handshakes rare; a new connection to an instance seen
// before resumes its TLS session (one ECDHE, no signatures). A user token
// costs the gateway one ES256 signature per user per 30 s and a service one
// ES256 verification per new token, then a map lookup. BenchmarkHandshake,
// BenchmarkTokenVerify, BenchmarkTokenIssue and BenchmarkRoundTrip measure
// each; docs/ARCHITECTURE.md records the figures.
package identity
