// Package flix is the reference system of Shoal: the back end of a small
// streaming service, cut into single-purpose services that each own their
// data and talk only over HTTP/JSON through the SDK's client.
//
//   - catalog: titles (list, get) from a generated dataset;
//   - ratings: a profile's rating of a title and a title's average, in
//     SQLite shared by the service's instances; writes apply once per
//     Idempotency-Key;
//   - api: the edge-facing composition, GET /titles/{id} = catalog title +
//     average rating, degraded (not failed) when ratings cannot answer in time;
//   - trailers: a Python program (standard library only), registered in
//     discovery by the supervisor, proving a non-Go program plugs in.
//
// This package holds no code: each service is its own main package below.
package flix
