package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Environment variables Open reads.
const (
	// EnvDatabaseURL, when set, is a postgres:// (or postgresql://) URL:
	// Open then uses PostgreSQL, a schema per service. Unset, Open uses
	// SQLite.
	EnvDatabaseURL = "SHOAL_DATABASE_URL"
	// EnvDataDir is the folder of Open's SQLite files, DefaultDataDir if
	// unset.
	EnvDataDir = "SHOAL_DATA_DIR"
	// EnvSynchronous, when set, overrides Config.Synchronous in Open and
	// OpenConfig: FULL, NORMAL, EXTRA or OFF.
	EnvSynchronous = "SHOAL_SQLITE_SYNCHRONOUS"
)

// DefaultDataDir is where Open keeps SQLite files when EnvDataDir is unset,
// relative to the working directory.
const DefaultDataDir = ".shoal/data"

// BusyTimeout is how long a SQLite statement waits for a lock held by
// another connection, or another process, before failing with SQLITE_BUSY
// (which Tx and Migrate then retry).
const BusyTimeout = 5 * time.Second

// Dialect is the SQL engine behind a DB.
type Dialect int

// The dialects.
const (
	SQLite Dialect = iota
	Postgres
)

func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// DB is a service's database: a *sql.DB and the dialect of its engine. It
// is safe for concurrent use. Use it through a pointer, as Open returns it.
type DB struct {
	*sql.DB
	Dialect Dialect

	// writer admits one transaction at a time per SQLite DB (a channel
	// of size 1, made on first use, so that a DB built as a literal
	// works): every SQLite transaction takes the file's write lock
	// anyway, and waiting here, with ctx, beats SQLite's busy handler,
	// which polls with sleeps up to 100 ms. The Tx calls waiting for it
	// are queued, to be committed together (group.go).
	writerOnce sync.Once
	writer     chan struct{}
	queueMu    sync.Mutex
	queue      []*member

	// nosync is the pool TxNoSync uses on SQLite when DB's connections
	// sync every commit: its connections sync at checkpoints only
	// (synchronous NORMAL). Nil: TxNoSync uses DB's.
	nosync *sql.DB
}

// Close closes the database's connections (see sql.DB.Close).
func (db *DB) Close() error {
	if db.nosync != nil {
		db.nosync.Close()
	}
	return db.DB.Close()
}

// Open opens the database of service from the environment, with the
// default Config: see OpenConfig.
func Open(ctx context.Context, service string) (*DB, error) {
	return OpenConfig(ctx, service, Config{})
}

// OpenConfig opens the database of service from the environment: if
// EnvDatabaseURL is set, the PostgreSQL database it names, with service's
// own schema (see SchemaName) created if needed and put on the search_path
// unless the URL sets search_path; otherwise the SQLite file
// <EnvDataDir>/<service>.db, created if needed, with cfg's settings
// (EnvSynchronous overrides cfg.Synchronous). Several processes may open
// the same database at once.
func OpenConfig(ctx context.Context, service string, cfg Config) (*DB, error) {
	if err := checkService(service); err != nil {
		return nil, err
	}
	if v := os.Getenv(EnvSynchronous); v != "" {
		cfg.Synchronous = v
	}
	if err := cfg.Validate(); err != nil {
		if os.Getenv(EnvSynchronous) != "" {
			return nil, fmt.Errorf("%w (from %s)", err, EnvSynchronous)
		}
		return nil, err
	}
	if u := os.Getenv(EnvDatabaseURL); u != "" {
		return openService(ctx, u, service)
	}
	dir := os.Getenv(EnvDataDir)
	if dir == "" {
		dir = DefaultDataDir
	}
	return openSQLite(ctx, filepath.Join(dir, service+".db"), cfg.withDefaults(), BusyTimeout)
}

// checkService accepts names that make a file name and a schema name.
func checkService(service string) error {
	if service == "" || len(service) > 63 {
		return fmt.Errorf("store: service name %q: want 1 to 63 characters", service)
	}
	for _, c := range service {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("store: service name %q: want letters, digits, '-', '_' and '.' only", service)
		}
	}
	return nil
}

// SchemaName is the PostgreSQL schema Open gives service: its name in lower
// case with '-' and '.' made '_'. Services sharing one PostgreSQL database
// each own a schema, so that their tables (and the SDK's, such as
// shoal_migrations or the events tables) never meet.
func SchemaName(service string) string {
	return strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToLower(service))
}

func openService(ctx context.Context, rawURL, service string) (*DB, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "postgres" && u.Scheme != "postgresql" {
		// The URL may hold a password: do not echo it.
		return nil, fmt.Errorf("store: %s: want a postgres:// URL", EnvDatabaseURL)
	}
	q := u.Query()
	schema := ""
	if q.Get("search_path") == "" {
		schema = SchemaName(service)
		q.Set("search_path", `"`+schema+`"`) // quoted: it may start with a digit
		u.RawQuery = q.Encode()
	}
	db, err := OpenPostgres(ctx, u.String())
	if err != nil {
		return nil, err
	}
	if schema != "" {
		// Concurrent CREATE SCHEMA IF NOT EXISTS can fail on the
		// catalog's unique index: take turns.
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if err := advisoryLock(ctx, tx, "schema:"+schema); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS "`+schema+`"`)
			return err
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("store: creating schema %s: %w", schema, err)
		}
	}
	return db, nil
}

// OpenSQLite opens the SQLite database at path, creating the file and its
// folder if needed, with WAL journaling, busy_timeout BusyTimeout, foreign
// keys on, synchronous FULL (see Config.Synchronous; EnvSynchronous is not
// read here), and transactions begun IMMEDIATE (so that a transaction never
// fails when it first writes: it waits for the write lock up front). Its
// connections keep the statements they run prepared (see the package
// documentation).
// Several processes may open the same file at once. path must not contain
// '?'; ":memory:" is not supported (each connection would have its own
// database): use a file in a temporary folder.
func OpenSQLite(ctx context.Context, path string) (*DB, error) {
	return openSQLite(ctx, path, DefaultConfig(), BusyTimeout)
}

func openSQLite(ctx context.Context, path string, cfg Config, busyTimeout time.Duration) (*DB, error) {
	if path == "" || strings.ContainsRune(path, '?') || path == ":memory:" {
		return nil, fmt.Errorf("store: SQLite path %q: want a file name without '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("store: creating the data folder: %w", err)
	}
	size := stmtCacheSize
	pool := func(synchronous string, idle int) (*sql.DB, error) {
		q := url.Values{}
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
		q.Add("_pragma", "foreign_keys(ON)")
		// A DSN pragma, so that every connection of the pool has it:
		// synchronous is a setting of the connection, not of the file.
		q.Add("_pragma", "synchronous("+synchronous+")")
		q.Set("_txlock", "immediate")
		base, err := sqlite.NewConnector(path + "?" + q.Encode())
		if err != nil {
			return nil, fmt.Errorf("store: opening %s: %w", path, err)
		}
		if size > 0 {
			base = connector{Connector: base, size: size}
		}
		sqldb := sql.OpenDB(base)
		// Keep connections warm: opening one runs the pragmas above,
		// and each keeps its prepared statements.
		sqldb.SetMaxIdleConns(idle)
		sqldb.SetConnMaxIdleTime(time.Minute)
		return sqldb, nil
	}
	sqldb, err := pool(cfg.Synchronous, 8)
	if err != nil {
		return nil, err
	}
	db := &DB{DB: sqldb, Dialect: SQLite}
	if cfg.Synchronous == "FULL" || cfg.Synchronous == "EXTRA" {
		// sql.Open connects later: a second pool costs nothing until
		// TxNoSync runs. Its writes take turns with Tx's (db.writer).
		if db.nosync, err = pool("NORMAL", 2); err != nil {
			sqldb.Close()
			return nil, err
		}
	}
	// WAL is a property of the file, set once and seen by every
	// connection after; changing it needs a moment alone with the file,
	// so another process opening it at once can make this fail busy.
	err = retry(ctx, func() error {
		var mode string
		if err := db.QueryRowContext(ctx, `PRAGMA journal_mode=WAL`).Scan(&mode); err != nil {
			return err
		}
		if !strings.EqualFold(mode, "wal") {
			return fmt.Errorf("journal mode is %q, want wal", mode)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: enabling WAL: %w", path, err)
	}
	return db, nil
}

// OpenPostgres opens the PostgreSQL database dsn names (a URL or key=value
// pairs, as pgx accepts) through pgx's database/sql driver, and checks that
// it answers.
func OpenPostgres(ctx context.Context, dsn string) (*DB, error) {
	sqldb, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: opening PostgreSQL: %w", err)
	}
	sqldb.SetMaxIdleConns(8)
	sqldb.SetConnMaxIdleTime(time.Minute)
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("store: connecting to PostgreSQL: %w", err)
	}
	return &DB{DB: sqldb, Dialect: Postgres}, nil
}

// Retryable reports whether err (or an error it wraps) says that a
// transaction lost a race and may succeed if run again: SQLite's
// SQLITE_BUSY and SQLITE_LOCKED (any extended code), PostgreSQL's
// serialization_failure (40001) and deadlock_detected (40P01). Tx and
// Migrate retry these; code that runs statements outside Tx may use it to
// retry them.
func Retryable(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}

// advisoryLock takes PostgreSQL's transaction-scoped advisory lock on a
// hash of key: held until tx ends. Advisory locks are per database, not
// per schema; a collision of keys only makes two holders take turns.
func advisoryLock(ctx context.Context, tx *sql.Tx, key string) error {
	h := fnv.New64a()
	h.Write([]byte("shoal:" + key))
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64()))
	return err
}
