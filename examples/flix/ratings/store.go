package main

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/idempotency"
	"github.com/shoal-dev/shoal/store"
)

// Rating is a profile's score of a title.
type Rating struct {
	Profile   string    `json:"profile"`
	Title     int64     `json:"title"`
	Score     int       `json:"score"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Average is a title's average score; Average is nil while Count is 0.
type Average struct {
	Title   int64    `json:"title"`
	Average *float64 `json:"average"`
	Count   int      `json:"count"`
}

// ratingsTable and ratingsIndex are the ratings table, the same in both
// dialects (SQLite's is WITHOUT ROWID besides). They are part of the first
// migration, which databases have applied already: a schema change is a
// new migration, never an edit here.
const (
	ratingsTable = `CREATE TABLE IF NOT EXISTS ratings (
				profile    TEXT    NOT NULL,
				title      BIGINT  NOT NULL,
				score      INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
				updated_at BIGINT  NOT NULL,
				PRIMARY KEY (profile, title)
			)`
	ratingsIndex = `CREATE INDEX IF NOT EXISTS ratings_by_title ON ratings (title, score)`
)

// migrations is the ratings schema's history (store.DB.Migrate). The
// first two also bring a ratings.db written by builds before the SDK's
// store package (which kept their version in PRAGMA user_version, and
// times as RFC 3339 text) to this schema: their statements are IF NOT
// EXISTS, and the second turns the old text times into Unix milliseconds.
var migrations = []store.Migration{
	{
		SQL: ratingsTable + ` WITHOUT ROWID;
			` + ratingsIndex + `;
			DROP TABLE IF EXISTS idempotency_keys`,
		Postgres: ratingsTable + `;
			` + ratingsIndex,
	},
	{
		SQL: `UPDATE ratings SET updated_at = CAST(strftime('%s', updated_at) AS INTEGER) * 1000
			WHERE typeof(updated_at) = 'text' AND updated_at GLOB '[0-9][0-9][0-9][0-9]-*'`,
		Postgres: `SELECT 1`, // no older PostgreSQL databases
	},
	{SQL: `CREATE TABLE ratings_dataset (
			name         TEXT    NOT NULL PRIMARY KEY,
			ratings      INTEGER NOT NULL,
			generated_at BIGINT  NOT NULL
		)`},
	// Retired: the idempotency package's table on PostgreSQL, which
	// idempotency.Store.Migrate now creates under the migration lock.
	{},
}

// ratingsStore is the ratings database, shared by every instance of the
// service. Idempotency keys live in the same database, in the SDK's
// table, so that a rating and its key commit in one transaction.
type ratingsStore struct {
	db   *store.DB
	keys *idempotency.Store

	// The popular titles, recomputed at most every topTTL: it reads
	// every rating, and a few seconds' staleness does not show.
	topMu   sync.Mutex
	topList []TopTitle
	topAt   time.Time
}

// Popularity: titles need minVotes ratings to be ranked; their Bayesian
// average weighs priorVotes ratings of the overall mean in, so that a few
// fives do not beat hundreds of fours. topTTL is how long a ranking is
// served before it is recomputed; maxTop how many are kept.
const (
	minVotes   = 10
	priorVotes = 25
	topTTL     = 5 * time.Second
	maxTop     = 100
)

// openRatings migrates db (the idempotency keys' table included) and
// returns the store over it. Several instances may call it at once. Keys
// belong to the verified user and caller (idempotency.VerifiedPrincipal,
// the default).
func openRatings(ctx context.Context, db *store.DB, keysCfg idempotency.Config) (*ratingsStore, error) {
	keys, err := idempotency.New(db, keysCfg)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, "ratings", migrations); err != nil {
		return nil, err
	}
	if err := keys.Migrate(ctx); err != nil {
		return nil, err
	}
	return &ratingsStore{db: db, keys: keys}, nil
}

// ensureDataset writes rs unless a dataset is there already, behind the
// dataset's marker row (store.DB.Once): of instances starting at once,
// exactly one writes it. A rating already there (a profile's own, in a
// database of an older build) is kept.
func (s *ratingsStore) ensureDataset(ctx context.Context, rs []Rating) (generated bool, err error) {
	return s.db.Once(ctx, `INSERT INTO ratings_dataset (name, ratings, generated_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO NOTHING`, []any{"ratings", len(rs), time.Now().UnixMilli()}, func(tx *sql.Tx) error {
		// One statement, prepared once, a row at a time: as fast as
		// multi-row statements on modernc.org/sqlite (which binds $n
		// parameters in time quadratic in their number), and with no
		// statement journal (a multi-row statement that may fail halfway
		// writes one, to a temporary file).
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO ratings (profile, title, score, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (profile, title) DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range rs {
			if _, err := stmt.ExecContext(ctx, r.Profile, r.Title, r.Score, r.UpdatedAt.UnixMilli()); err != nil {
				return err
			}
		}
		return nil
	})
}

// put sets profile's score of title and returns the answer (the rating as
// JSON). With a claim, the answer is recorded under the request's
// idempotency key in the same transaction: the write applies once per key.
// A nil claim writes without a key (tests, tools).
func (s *ratingsStore) put(ctx context.Context, claim *idempotency.Claim, r Rating) ([]byte, error) {
	var body []byte
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		r.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
		if _, err := tx.ExecContext(ctx, `INSERT INTO ratings (profile, title, score, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (profile, title) DO UPDATE SET score = excluded.score, updated_at = excluded.updated_at`,
			r.Profile, r.Title, r.Score, r.UpdatedAt.UnixMilli()); err != nil {
			return err
		}
		var err error
		if body, err = json.Marshal(r); err != nil {
			return err
		}
		body = append(body, '\n')
		if claim != nil {
			return claim.Complete(ctx, tx, http.StatusOK, "application/json", body)
		}
		return nil
	})
	return body, err
}

// get returns profile's rating of title; ok is false if there is none.
func (s *ratingsStore) get(ctx context.Context, profile string, title int64) (r Rating, ok bool, err error) {
	var ms int64
	err = s.db.QueryRowContext(ctx, `SELECT score, updated_at FROM ratings WHERE profile = $1 AND title = $2`, profile, title).
		Scan(&r.Score, &ms)
	if errors.Is(err, sql.ErrNoRows) {
		return Rating{}, false, nil
	}
	if err != nil {
		return Rating{}, false, err
	}
	r.Profile, r.Title, r.UpdatedAt = profile, title, time.UnixMilli(ms).UTC()
	return r, true, nil
}

// ofProfile returns profile's ratings, the latest first.
func (s *ratingsStore) ofProfile(ctx context.Context, profile string) ([]Rating, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT title, score, updated_at FROM ratings WHERE profile = $1
		ORDER BY updated_at DESC, title`, profile)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Rating{}
	for rows.Next() {
		r := Rating{Profile: profile}
		var ms int64
		if err := rows.Scan(&r.Title, &r.Score, &ms); err != nil {
			return nil, err
		}
		r.UpdatedAt = time.UnixMilli(ms).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// average returns title's average score, rounded to two decimals.
func (s *ratingsStore) average(ctx context.Context, title int64) (Average, error) {
	a := Average{Title: title}
	var avg sql.NullFloat64
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), AVG(score) FROM ratings WHERE title = $1`, title).Scan(&a.Count, &avg)
	if err != nil {
		return Average{}, err
	}
	if avg.Valid {
		v := round2(avg.Float64)
		a.Average = &v
	}
	return a, nil
}

// TopTitle is a popular title: its plain average, and how many ratings it
// has.
type TopTitle struct {
	Title   int64   `json:"title"`
	Average float64 `json:"average"`
	Count   int     `json:"count"`
}

// top returns the maxTop most popular titles, best first: those with at
// least minVotes ratings, by Bayesian average (the average of their
// ratings plus priorVotes ratings of the overall mean). The list is
// computed at most once every topTTL; the returned slice is shared: do not
// modify it.
func (s *ratingsStore) top(ctx context.Context) ([]TopTitle, error) {
	s.topMu.Lock()
	defer s.topMu.Unlock()
	if s.topList != nil && time.Since(s.topAt) < topTTL {
		return s.topList, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT title, COUNT(*), SUM(score) FROM ratings GROUP BY title`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type tally struct {
		title      int64
		count, sum int64
		bayes      float64
	}
	var all []tally
	var count, sum int64
	for rows.Next() {
		var t tally
		if err := rows.Scan(&t.title, &t.count, &t.sum); err != nil {
			return nil, err
		}
		count += t.count
		sum += t.sum
		if t.count >= minVotes {
			all = append(all, t)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	mean := 0.0
	if count > 0 {
		mean = float64(sum) / float64(count)
	}
	for i := range all {
		t := &all[i]
		t.bayes = (float64(t.sum) + priorVotes*mean) / float64(t.count+priorVotes)
	}
	slices.SortFunc(all, func(a, b tally) int {
		return cmp.Or(cmp.Compare(b.bayes, a.bayes), cmp.Compare(b.count, a.count), cmp.Compare(a.title, b.title))
	})
	list := make([]TopTitle, 0, min(len(all), maxTop))
	for _, t := range all[:min(len(all), maxTop)] {
		list = append(list, TopTitle{Title: t.title, Average: round2(float64(t.sum) / float64(t.count)), Count: int(t.count)})
	}
	s.topList, s.topAt = list, time.Now()
	return list, nil
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
