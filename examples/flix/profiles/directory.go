package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/store"
)

// migrations is the profiles schema, applied once per database by
// store.DB.Migrate. One statement each, in SQL both SQLite and PostgreSQL
// accept. datasets holds one marker row per generated dataset.
var migrations = []store.Migration{
	{SQL: `CREATE TABLE accounts (
		id            BIGINT NOT NULL PRIMARY KEY,
		email         TEXT   NOT NULL UNIQUE,
		password_hash TEXT   NOT NULL,
		created_at    BIGINT NOT NULL
	)`},
	{SQL: `CREATE TABLE profiles (
		id       TEXT   NOT NULL PRIMARY KEY,
		account  BIGINT NOT NULL REFERENCES accounts (id),
		name     TEXT   NOT NULL,
		maturity TEXT   NOT NULL
	)`},
	{SQL: `CREATE INDEX profiles_by_account ON profiles (account)`},
	{SQL: `CREATE TABLE datasets (
		name       TEXT   NOT NULL PRIMARY KEY,
		created_at BIGINT NOT NULL
	)`},
	// Failed sign-ins in a row per email (backoff.go).
	{SQL: `CREATE TABLE signin_failures (
		email    TEXT   NOT NULL PRIMARY KEY,
		failures BIGINT NOT NULL,
		last_ms  BIGINT NOT NULL,
		until_ms BIGINT NOT NULL
	)`},
	{SQL: `CREATE INDEX signin_failures_by_last ON signin_failures (last_ms)`},
}

// directory is the accounts and profiles database, shared by every
// instance of the service.
type directory struct {
	db        *store.DB
	generated bool // this instance wrote the dataset (the first start)

	// The statements of the hot paths, prepared once.
	signinStmt  *sql.Stmt
	profileStmt *sql.Stmt
	backoffStmt *sql.Stmt

	now func() time.Time // time.Now unless a test says otherwise
}

// openDirectory migrates db, generates the dataset if no instance did
// yet, and prepares the statements of the hot paths. Any number of
// instances may call it at once on one database.
func openDirectory(ctx context.Context, db *store.DB) (*directory, error) {
	if err := db.Migrate(ctx, "profiles", migrations); err != nil {
		return nil, fmt.Errorf("migrating: %w", err)
	}
	d := &directory{db: db, now: time.Now}
	var err error
	if d.generated, err = d.generate(ctx); err != nil {
		return nil, fmt.Errorf("generating the dataset: %w", err)
	}
	// One query per sign-in: the account's hash, and the profile if it is
	// one of the account's (NULL otherwise), so that every refusal costs
	// the same password check.
	d.signinStmt, err = db.PrepareContext(ctx, `SELECT a.password_hash, p.id, p.account, p.name, p.maturity
		FROM accounts a LEFT JOIN profiles p ON p.account = a.id AND p.id = $1
		WHERE a.email = $2`)
	if err != nil {
		return nil, err
	}
	d.profileStmt, err = db.PrepareContext(ctx, `SELECT account, name, maturity FROM profiles WHERE id = $1`)
	if err != nil {
		d.signinStmt.Close()
		return nil, err
	}
	d.backoffStmt, err = db.PrepareContext(ctx, `SELECT failures, until_ms FROM signin_failures WHERE email = $1`)
	if err != nil {
		d.signinStmt.Close()
		d.profileStmt.Close()
		return nil, err
	}
	return d, nil
}

// Close releases the prepared statements; the caller closes the database.
func (d *directory) Close() error {
	return errors.Join(d.signinStmt.Close(), d.profileStmt.Close(), d.backoffStmt.Close())
}

// generate writes the dataset in one transaction, unless its marker row
// is there already (store.DB.Once: of several instances starting at once,
// one writes it), and reports whether it wrote it.
func (d *directory) generate(ctx context.Context) (bool, error) {
	// Computed before the transaction, so as not to hold the write lock
	// during it.
	hash, err := hashWithSalt(DatasetPassword, datasetSalt, Iterations)
	if err != nil {
		return false, err
	}
	now := time.Now().UnixMilli()
	return d.db.Once(ctx, `INSERT INTO datasets (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, []any{datasetName, now}, func(tx *sql.Tx) error {
		acct, err := tx.PrepareContext(ctx, `INSERT INTO accounts (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)`)
		if err != nil {
			return err
		}
		defer acct.Close()
		prof, err := tx.PrepareContext(ctx, `INSERT INTO profiles (id, account, name, maturity) VALUES ($1, $2, $3, $4)`)
		if err != nil {
			return err
		}
		defer prof.Close()
		for k := int64(1); k <= Accounts; k++ {
			if _, err := acct.ExecContext(ctx, k, accountEmail(k), hash, now); err != nil {
				return fmt.Errorf("account %d: %w", k, err)
			}
			for _, p := range datasetProfiles(k) {
				if _, err := prof.ExecContext(ctx, p.ID, p.Account, p.Name, p.Maturity); err != nil {
					return fmt.Errorf("profile %s: %w", p.ID, err)
				}
			}
		}
		return nil
	})
}

// credentials is what a sign-in checks: the account's password hash
// (empty if no account has the email) and the requested profile, if it
// is one of the account's.
type credentials struct {
	hash    string
	profile Profile
	found   bool // the profile belongs to the account
}

func (d *directory) credentials(ctx context.Context, email, profile string) (credentials, error) {
	var c credentials
	var id, name, maturity sql.NullString
	var account sql.NullInt64
	err := d.signinStmt.QueryRowContext(ctx, profile, email).Scan(&c.hash, &id, &account, &name, &maturity)
	if errors.Is(err, sql.ErrNoRows) {
		return credentials{}, nil
	}
	if err != nil {
		return credentials{}, err
	}
	if id.Valid {
		c.profile = Profile{ID: id.String, Account: account.Int64, Name: name.String, Maturity: maturity.String,
			MayWatch: mayWatch(maturity.String)}
		c.found = true
	}
	return c, nil
}

// profile returns the profile with the id; ok is false if there is none.
func (d *directory) profile(ctx context.Context, id string) (p Profile, ok bool, err error) {
	err = d.profileStmt.QueryRowContext(ctx, id).Scan(&p.Account, &p.Name, &p.Maturity)
	if errors.Is(err, sql.ErrNoRows) {
		return Profile{}, false, nil
	}
	if err != nil {
		return Profile{}, false, err
	}
	p.ID, p.MayWatch = id, mayWatch(p.Maturity)
	return p, true, nil
}
