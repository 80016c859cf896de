package main

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/idempotency"
	"github.com/shoal-dev/shoal/store"
)

// topicTitles is the topic of the event published for every title added,
// the dataset's included: its payload is the Title.
const topicTitles = "titles"

// migrations is the catalog's schema history (store.DB.Migrate).
var migrations = []store.Migration{
	{SQL: `CREATE TABLE titles (
			id         INTEGER NOT NULL PRIMARY KEY,
			name       TEXT    NOT NULL,
			year       INTEGER NOT NULL,
			genres     TEXT    NOT NULL,
			kind       TEXT    NOT NULL,
			seasons    INTEGER NOT NULL,
			episodes   TEXT    NOT NULL,
			maturity   TEXT    NOT NULL,
			duration_s INTEGER NOT NULL,
			added_at   BIGINT  NOT NULL
		);
		CREATE INDEX titles_by_added ON titles (added_at);
		CREATE TABLE catalog_dataset (
			name         TEXT    NOT NULL PRIMARY KEY,
			titles       INTEGER NOT NULL,
			generated_at BIGINT  NOT NULL
		)`},
	// Retired: the idempotency package's table on PostgreSQL, which
	// idempotency.Store.Migrate now creates under the migration lock.
	{},
}

const titleColumns = `id, name, year, genres, kind, seasons, episodes, maturity, duration_s, added_at`

// catalog holds the titles: in the database, shared by every instance, and
// in an immutable in-memory snapshot that serves reads. Titles never change
// once added, so a snapshot is never wrong, only possibly short of titles
// another instance added within refreshEvery (GET /titles/{id} looks those
// up in the database).
type catalog struct {
	db     *store.DB
	outbox *events.Outbox
	keys   *idempotency.Store
	log    *slog.Logger
	// refreshEvery bounds how stale a snapshot gets: the first read after
	// it checks the database for titles added since.
	refreshEvery time.Duration

	snap       atomic.Pointer[snapshot]
	refreshing sync.Mutex // one refresh at a time
}

// defaultRefresh is catalog.refreshEvery's default.
const defaultRefresh = time.Second

// open migrates the database, writes dataset if no instance has written
// one (and reports whether this one did), and loads the first snapshot.
func (c *catalog) open(ctx context.Context, dataset []Title) (generated bool, err error) {
	if err := c.db.Migrate(ctx, "catalog", migrations); err != nil {
		return false, err
	}
	if err := c.outbox.Migrate(ctx); err != nil {
		return false, err
	}
	if err := c.keys.Migrate(ctx); err != nil {
		return false, err
	}
	generated, err = c.ensureDataset(ctx, dataset)
	if err != nil {
		return false, fmt.Errorf("writing the dataset: %w", err)
	}
	s, err := c.loadAfter(ctx, &snapshot{})
	if err != nil {
		return generated, fmt.Errorf("loading the titles: %w", err)
	}
	c.snap.Store(s)
	return generated, nil
}

// ensureDataset writes titles, and one "titles" event per title, unless
// the dataset is there already: once per database, behind the dataset's
// marker row (store.DB.Once), so that of instances starting at once
// exactly one writes it.
func (c *catalog) ensureDataset(ctx context.Context, titles []Title) (generated bool, err error) {
	return c.db.Once(ctx, `INSERT INTO catalog_dataset (name, titles, generated_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO NOTHING`, []any{"titles", len(titles), time.Now().UnixMilli()}, func(tx *sql.Tx) error {
		// One statement, prepared once. (Multi-row statements with many
		// $n parameters are slower on modernc.org/sqlite, which binds
		// them in time quadratic in their number.)
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO titles (`+titleColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, t := range titles {
			if _, err := stmt.ExecContext(ctx, titleArgs(t)...); err != nil {
				return err
			}
		}
		for _, t := range titles {
			if _, err := c.outbox.Publish(ctx, tx, topicTitles, t); err != nil {
				return err
			}
		}
		return nil
	})
}

func titleArgs(t Title) []any {
	return []any{t.ID, t.Name, t.Year, strings.Join(t.Genres, ","), t.Kind, t.Seasons,
		joinInts(t.episodes), t.Maturity, t.DurationS, t.AddedAt}
}

// add stores t under the next id, publishes its event and, with a claim,
// records the stored title's JSON as the answer to the request's
// idempotency key, all in one transaction. It returns the stored title and
// that answer.
func (c *catalog) add(ctx context.Context, claim *idempotency.Claim, t Title) (Title, []byte, error) {
	var body []byte
	stored := t
	err := c.db.Tx(ctx, func(tx *sql.Tx) error {
		if c.db.Dialect == store.Postgres {
			// SQLite's write lock already serializes writers; on
			// PostgreSQL, two adds must not read the same MAX(id).
			if _, err := tx.ExecContext(ctx, `LOCK TABLE titles IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				return err
			}
		}
		stored = t
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) + 1 FROM titles`).Scan(&stored.ID); err != nil {
			return err
		}
		if stored.AddedAt == 0 {
			stored.AddedAt = time.Now().UnixMilli()
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO titles (`+titleColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			titleArgs(stored)...); err != nil {
			return err
		}
		if _, err := c.outbox.Publish(ctx, tx, topicTitles, stored); err != nil {
			return err
		}
		var err error
		if body, err = shoal.EncodeJSON(stored); err != nil {
			return err
		}
		if claim != nil {
			return claim.Complete(ctx, tx, 201, "application/json", body)
		}
		return nil
	})
	if err != nil {
		return Title{}, nil, err
	}
	c.invalidate()
	return stored, body, nil
}

// invalidate makes the next read refresh the snapshot: after an add, this
// instance's own lists show the title at once.
func (c *catalog) invalidate() {
	c.refreshing.Lock() // a refresh under way may not have seen the add
	defer c.refreshing.Unlock()
	s := *c.snap.Load()
	s.checked = time.Time{}
	c.snap.Store(&s)
}

// current returns the snapshot, first bringing it up to date if it was
// last checked more than refreshEvery ago. Only one request refreshes at a
// time; the others serve the snapshot they have meanwhile. A failed
// refresh is logged and tried again by the next request.
func (c *catalog) current(ctx context.Context) *snapshot {
	s := c.snap.Load()
	if time.Since(s.checked) < c.refreshEvery || !c.refreshing.TryLock() {
		return s
	}
	defer c.refreshing.Unlock()
	if s = c.snap.Load(); time.Since(s.checked) < c.refreshEvery {
		return s
	}
	ns, err := c.loadAfter(ctx, s)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("catalog: refreshing the titles", "err", err)
		}
		return s
	}
	c.snap.Store(ns)
	return ns
}

// loadAfter returns s with the titles of id above s.maxID added.
func (c *catalog) loadAfter(ctx context.Context, s *snapshot) (*snapshot, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT `+titleColumns+` FROM titles WHERE id > $1 ORDER BY id`, s.maxID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var added []Title
	for rows.Next() {
		t, err := scanTitle(rows)
		if err != nil {
			return nil, err
		}
		added = append(added, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(added) == 0 {
		ns := *s
		ns.checked = time.Now()
		return &ns, nil
	}
	return newSnapshot(append(slices.Clip(s.titles), added...)), nil
}

// lookup reads title id from the database; ok is false if there is none.
func (c *catalog) lookup(ctx context.Context, id int) (t Title, ok bool, err error) {
	t, err = scanTitle(c.db.QueryRowContext(ctx, `SELECT `+titleColumns+` FROM titles WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Title{}, false, nil
	}
	return t, err == nil, err
}

// get returns title id, from the snapshot or else from the database.
func (c *catalog) get(ctx context.Context, id int) (Title, bool, error) {
	s := c.snap.Load()
	if t, ok := s.get(id); ok {
		return t, true, nil
	}
	if id <= s.maxID {
		// Ids are handed out in order (add): one below the snapshot's
		// highest that the snapshot lacks was never a title.
		return Title{}, false, nil
	}
	return c.lookup(ctx, id)
}

type scanner interface{ Scan(dest ...any) error }

func scanTitle(row scanner) (Title, error) {
	var t Title
	var gs, eps string
	if err := row.Scan(&t.ID, &t.Name, &t.Year, &gs, &t.Kind, &t.Seasons, &eps, &t.Maturity, &t.DurationS, &t.AddedAt); err != nil {
		return Title{}, err
	}
	t.Genres = strings.Split(gs, ",")
	var err error
	if t.episodes, err = splitInts(eps); err != nil {
		return Title{}, fmt.Errorf("title %d: episodes %q: %w", t.ID, eps, err)
	}
	return t, nil
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func splitInts(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	ns := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, err
		}
		ns[i] = n
	}
	return ns, nil
}

// snapshot is the catalog at one moment, with the orders and filters the
// API serves precomputed. It is never modified once built.
type snapshot struct {
	titles  []Title            // by id
	newest  []int32            // indexes into titles, newest first
	byGenre map[string][]int32 // indexes by id, per genre
	newestG map[string][]int32 // indexes newest first, per genre
	maxID   int
	checked time.Time // when the database was last checked for more
}

func newSnapshot(titles []Title) *snapshot {
	s := &snapshot{titles: titles, byGenre: map[string][]int32{}, newestG: map[string][]int32{}, checked: time.Now()}
	s.newest = make([]int32, len(titles))
	for i, t := range titles {
		s.newest[i] = int32(i)
		for _, g := range t.Genres {
			s.byGenre[g] = append(s.byGenre[g], int32(i))
		}
	}
	if len(titles) > 0 {
		s.maxID = titles[len(titles)-1].ID
	}
	newer := func(a, b int32) int {
		ta, tb := &titles[a], &titles[b]
		return cmp.Or(cmp.Compare(tb.AddedAt, ta.AddedAt), cmp.Compare(tb.ID, ta.ID))
	}
	slices.SortFunc(s.newest, newer)
	for g, idx := range s.byGenre {
		s.newestG[g] = slices.SortedFunc(slices.Values(idx), newer)
	}
	return s
}

func (s *snapshot) get(id int) (Title, bool) {
	i, ok := slices.BinarySearchFunc(s.titles, id, func(t Title, id int) int { return t.ID - id })
	if !ok {
		return Title{}, false
	}
	return s.titles[i], true
}

// page returns the titles of genre (all if ""), newest first or by id,
// from offset, at most limit of them, and how many there are in all.
func (s *snapshot) page(genre string, newest bool, offset, limit int) ([]Title, int) {
	var idx []int32
	switch {
	case genre == "" && newest:
		idx = s.newest
	case genre == "":
		out := s.titles[min(offset, len(s.titles)):min(offset+limit, len(s.titles))]
		return slices.Clone(out), len(s.titles)
	case newest:
		idx = s.newestG[genre]
	default:
		idx = s.byGenre[genre]
	}
	out := make([]Title, 0, max(0, min(limit, len(idx)-offset)))
	for _, i := range idx[min(offset, len(idx)):min(offset+limit, len(idx))] {
		out = append(out, s.titles[i])
	}
	return out, len(idx)
}
