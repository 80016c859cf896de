// Package flix is the reference system of Shoal: the back end of a small
// streaming service, cut into single-purpose services that each own their
// data (SQLite per service under .shoal/data, PostgreSQL when
// SHOAL_DATABASE_URL is set) and talk only over HTTP/JSON through the SDK's
// client, or through events (a transactional outbox, a deduplicating inbox):
//
//   - catalog: titles, seasons, episodes, genres; publishes "titles" events;
//   - search: full-text search over titles, kept current from those events;
//   - profiles: accounts and profiles; POST /signin issues the ES256 JWT
//     the gateway verifies;
//   - ratings: a profile's rating of a title, per-title averages, top rated;
//     writes apply once per Idempotency-Key;
//   - history: what a profile watched and where it stopped, from "progress"
//     events;
//   - playback: starts a viewing session (may this profile watch this
//     title?), records progress and publishes "progress" events;
//   - recommendations: per-profile picks from ratings and history, popular
//     titles otherwise;
//   - api: the home page, whose rows (continue watching, recommendations,
//     top rated, new) each degrade on their own instead of failing the page;
//   - trailers: a Python program (standard library only), registered in
//     discovery by the supervisor, proving a non-Go program plugs in.
//
// The gateway (cmd/shoal gateway, configured by shoal.yaml's gateway:
// section) is the only way in. Every service serves /openapi.json.
//
// This package holds no code: each service is its own main package below.
package flix
