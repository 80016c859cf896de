// Package discovery tells every Shoal process which instances of which
// services exist right now, without a registry server to run.
//
// Each process runs one [Member]. Members gossip with each other over
// hashicorp/memberlist (SWIM failure detection with the Lifeguard extensions),
// and each one carries its own [Instance] record (service name, HTTP address,
// version, serving or draining) as memberlist node metadata. Every member turns
// what it hears into a local [Catalog]: an immutable [Snapshot] replaced
// atomically on each change, so the request path (the client package's
// resolver and the balance package's picker) reads it without locks, network
// calls or allocation.
//
// Lifecycle of a member:
//
//   - [New] checks the configuration and the instance record; it does no I/O.
//   - [Member.Run] binds the gossip port, joins the seeds (retrying in the
//     background until one answers, so a service may start before its seeds,
//     even if other members join it meanwhile, and again whenever it is left
//     alone; a seed's host name is resolved to
//     every address behind it at each attempt), keeps the catalog in sync
//     with membership, reaches back to members lost to a failure so that the
//     two sides of a healed partition merge ([Config.ReconnectInterval]),
//     and when its context ends leaves gracefully and shuts down.
//   - [Member.SetState] advertises draining before a planned shutdown and
//     blocks until the change has been broadcast, so peers stop sending new
//     requests before the server stops.
//
// A member that crashes is removed from every peer's catalog by failure
// detection; one that leaves gracefully is removed as soon as its leave
// message spreads. [LocalConfig] tunes the timings for many members on one
// machine; see its comments for the numbers and why. [RemovalBound] states
// how long a crashed member may stay in the catalogs with a profile's
// timings.
//
// # Security
//
// Gossip decides where calls go, so it is guarded at three layers.
//
// Encryption. With [Config.Keys] set, memberlist encrypts and authenticates
// every gossip message (AES-GCM) and drops anything else: a process without
// a key in use can neither join nor inject records. Gossip that leaves the
// machine must be encrypted: [New] refuses a bind or advertise address that
// is not loopback without a key ([ErrUnencrypted], naming SHOAL_GOSSIP_KEY).
// On loopback a key is optional; `shoal up` always sets one, generated per
// system ([NewKey], [EncodeKeys]). Processes read the keyring with
// [KeysFromEnv] from SHOAL_GOSSIP_KEY: base64 keys (16, 24 or 32 bytes),
// comma-separated, primary first. The primary key encrypts; every key
// decrypts.
//
// Key rotation, with one rolling restart of every member per step (a member
// may only ever meet members one step away, so each step must reach every
// member before the next begins):
//
//  1. SHOAL_GOSSIP_KEY=old,new  add the new key as secondary: everyone can
//     read it, no one sends with it yet.
//  2. SHOAL_GOSSIP_KEY=new,old  make it primary: members send with the new
//     key and still read the old one from members not yet restarted.
//  3. SHOAL_GOSSIP_KEY=new      remove the old key.
//
// Advertised addresses. A member with the key could still advertise any
// HTTP address: `profiles` at an address of its own choosing (to receive
// sign-in bodies), or `catalog` at a cloud metadata address (to make a
// public route an SSRF hop). Records are therefore checked before they enter
// the catalog: the HTTP address must be an IP literal, inside
// [Config.AllowedCIDRs] when set, and on the member's own gossip IP (any
// loopback address for a member gossiping on loopback) unless
// [Config.ServeOnOtherIP] allows another. Refused records are logged and
// left out; the member stays a gossip peer. A Member also refuses to start
// with a record its peers would refuse. AllowedCIDRs also restricts which
// addresses gossip is accepted from (memberlist's CIDRsAllowed).
//
// Signed records were considered and not chosen: memberlist limits a
// record to 512 bytes, a typical record is ~120 bytes and an instance
// certificate ~490 bytes DER, so a record cannot carry the certificate that
// would make its signature verifiable, and distributing certificates
// separately would rebuild what the call path already has. The identity
// package gives the property where it matters, at call time: the client
// verifies over mutual TLS that the instance it reached holds a certificate
// for the service it asked for, so a record pointing at an address that
// cannot present that certificate fails the TLS handshake before any
// request byte is sent. The address check above keeps such records from
// being tried at all, and keeps a member with the key but without a
// certificate from aiming calls at arbitrary hosts.
//
// The discoverytest package starts in-process clusters for tests.
package discovery
