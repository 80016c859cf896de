// Package store opens a service's own SQL database and runs its
// migrations and transactions, the same way on SQLite and PostgreSQL
// (principle 5: each service owns its data; principle 6: SQLite per
// service on one machine, PostgreSQL when data must be shared across
// hosts).
//
// Open picks the engine from the environment: with SHOAL_DATABASE_URL
// unset, the SQLite file <SHOAL_DATA_DIR>/<service>.db (modernc.org/sqlite,
// pure Go, in WAL mode); with SHOAL_DATABASE_URL=postgres://…, that
// PostgreSQL database through pgx, in a schema of the service's own. Every
// instance of a service opens the same database: on one machine, several
// processes share the SQLite file and SQLite's locks serialize their
// writes; beyond it, they share the PostgreSQL database.
//
//	db, err := store.Open(ctx, "ratings")
//	…
//	err = db.Migrate(ctx, "ratings", []store.Migration{
//		{SQL: `CREATE TABLE ratings (profile TEXT NOT NULL, title BIGINT NOT NULL, score INTEGER NOT NULL,
//			updated_at BIGINT NOT NULL, PRIMARY KEY (profile, title))`},
//	})
//	…
//	err = db.Tx(ctx, func(tx *sql.Tx) error {
//		_, err := tx.ExecContext(ctx, `INSERT INTO ratings VALUES ($1, $2, $3, $4)
//			ON CONFLICT (profile, title) DO UPDATE SET score = excluded.score, updated_at = excluded.updated_at`,
//			profile, title, score, time.Now().UnixMilli())
//		return err
//	})
//
// DB.Migrate applies a list of migrations once per database, however many
// instances start at once. DB.Tx runs a transaction and runs it again when
// it loses a race (SQLite busy, PostgreSQL serialization failure or
// deadlock); on SQLite its transactions take the write lock up front, so
// writers queue instead of failing, and those of a process that queue
// together commit together. DB.TxNoSync is Tx without waiting for the
// disk at commit. DB.Once runs a transaction once per database, behind a
// marker row (a dataset written at first start).
//
// # Portable SQL
//
// One query text serves both engines if it keeps to these rules:
//
//   - Parameters are $1, $2, …, which PostgreSQL requires. Number them in
//     increasing order of first appearance ($1 before $2 before $3); a
//     parameter may appear again later ("WHERE a = $1 OR b = $1"). SQLite
//     (modernc.org/sqlite) binds $n to the n-th argument, and the tests
//     check that it does; keeping to the order also keeps queries readable
//     and valid if a driver ever binds by position of first appearance.
//   - Times are BIGINT Unix milliseconds (time.UnixMilli and
//     Time.UnixMilli): both engines compare and index them alike, with no
//     time zone or text format to agree on.
//   - Upserts are INSERT … ON CONFLICT (cols) DO NOTHING / DO UPDATE SET
//     col = excluded.col; RETURNING works on both.
//   - Types: TEXT, BIGINT, INTEGER, BOOLEAN, DOUBLE PRECISION. Binary data
//     is BLOB on SQLite and BYTEA on PostgreSQL: give such migrations a
//     Migration.Postgres variant.
//   - No SELECT … FOR UPDATE on SQLite (its transactions already hold the
//     write lock): branch on DB.Dialect where PostgreSQL needs it.
//
// # Prepared statements
//
// On SQLite, each connection keeps the last 128 statements it ran
// prepared, keyed by their text, and runs them again without parsing and
// planning them anew (modernc.org/sqlite alone prepares every string query
// at every call). Nothing changes for the caller: texts of several
// statements, or with a ';' inside, run as before, uncached. Pass values
// as parameters ($1, …) rather than pasting them into the text: each
// distinct text takes a place in the cache. PostgreSQL's driver, pgx,
// caches statements itself.
//
// # Limits
//
// SQLite allows one writer at a time per file: a write transaction of
// one process makes all others wait (up to BusyTimeout, then Tx retries).
// Keep transactions short and free of network calls. SQLite commits are
// synced to disk (synchronous=FULL), so an acknowledged write survives a
// power cut; Config.Synchronous or SHOAL_SQLITE_SYNCHRONOUS=NORMAL trade
// that for cheaper commits (durable across process crashes only). The
// sync is paid once per group of Tx calls that wait for the lock together
// (they commit as one transaction), and not at all by TxNoSync, for
// bookkeeping that may be lost in a power cut. On
// PostgreSQL, Open creates the service's schema; the URL's user needs the
// right to.
package store
