package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
	"github.com/shoal-dev/shoal/store"
)

// dump returns every account and profile row, in order, as text.
func dump(t *testing.T, db *store.DB) string {
	t.Helper()
	var b strings.Builder
	rows, err := db.Query(`SELECT a.id, a.email, a.password_hash, p.id, p.name, p.maturity
		FROM accounts a JOIN profiles p ON p.account = a.id ORDER BY a.id, p.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var email, hash, pid, name, maturity string
		if err := rows.Scan(&id, &email, &hash, &pid, &name, &maturity); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(&b, id, email, hash, pid, name, maturity)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The dataset is complete, follows the contract, and is the same on every
// engine and every run.
func TestDataset(t *testing.T) {
	var dumps []string
	for _, d := range flixtest.Dialects {
		t.Run(d.Name, func(t *testing.T) {
			db := d.Open(t, "profiles")
			start := time.Now()
			dir := openTestDirectory(t, db)
			t.Logf("%s: migrations and dataset in %v", d.Name, time.Since(start))

			var accounts, profiles, kids int
			if err := db.QueryRow(`SELECT COUNT(*) FROM accounts`).Scan(&accounts); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow(`SELECT COUNT(*), SUM(CASE WHEN maturity = 'kids' THEN 1 ELSE 0 END) FROM profiles`).Scan(&profiles, &kids); err != nil {
				t.Fatal(err)
			}
			if accounts != 250 || profiles != 500 || kids != 50 {
				t.Errorf("%d accounts, %d profiles, %d kids; want 250, 500, 50", accounts, profiles, kids)
			}
			ctx := context.Background()
			for k := int64(1); k <= Accounts; k++ {
				for i := range 2 {
					id := fmt.Sprintf("p%04d", 2*k-1+int64(i))
					p, ok, err := dir.profile(ctx, id)
					if err != nil || !ok {
						t.Fatalf("profile %s: %v, %v", id, ok, err)
					}
					wantKids := i == 1 && k%5 == 0
					if p.Account != k || (p.Maturity == MaturityKids) != wantKids || p.Name == "" || !slices.Equal(p.MayWatch, mayWatch(p.Maturity)) {
						t.Errorf("profile %s = %+v; want account %d, kids %v", id, p, k, wantKids)
					}
				}
				c, err := dir.credentials(ctx, fmt.Sprintf("user%d@flix.example", k), fmt.Sprintf("p%04d", 2*k))
				if err != nil || !c.found {
					t.Fatalf("account %d: %+v, %v", k, c, err)
				}
				if k == 1 || k == Accounts {
					if ok, err := checkPassword(c.hash, "flix"); !ok || err != nil {
						t.Errorf("account %d: password flix does not match (%v)", k, err)
					}
				}
			}
			// Generation runs once: a restart finds the marker.
			if wrote, err := dir.generate(ctx); wrote || err != nil {
				t.Errorf("second generate: wrote %v, %v", wrote, err)
			}
			dumps = append(dumps, dump(t, db))
		})
	}
	// Deterministic: another database gets the very same rows.
	again := dump(t, openTestDirectory(t, flixtest.SQLite(t, "profiles")).db)
	for i, d := range dumps {
		if d != again {
			t.Errorf("dataset %d differs from a fresh SQLite one", i)
		}
	}
}

// Three instances starting at once on one new database: the dataset is
// written once, by one of them.
func TestDatasetConcurrentStart(t *testing.T) {
	for _, d := range flixtest.Dialects {
		t.Run(d.Name, func(t *testing.T) {
			var dbs [3]*store.DB
			if d.Name == "sqlite" {
				path := filepath.Join(t.TempDir(), "profiles.db")
				for i := range dbs {
					db, err := store.OpenSQLite(t.Context(), path)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { db.Close() })
					dbs[i] = db
				}
			} else {
				dbs[0] = d.Open(t, "profiles")
				dbs[1], dbs[2] = dbs[0], dbs[0] // one pool: three transactions at once all the same
			}
			var wg sync.WaitGroup
			errs := make([]error, len(dbs))
			for i, db := range dbs {
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					var dir *directory
					dir, errs[i] = openDirectory(ctx, db)
					if dir != nil {
						dir.Close()
					}
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("instance %d: %v", i, err)
				}
			}
			var n, marks int
			if err := dbs[0].QueryRow(`SELECT COUNT(*) FROM profiles`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if err := dbs[0].QueryRow(`SELECT COUNT(*) FROM datasets`).Scan(&marks); err != nil {
				t.Fatal(err)
			}
			if n != 500 || marks != 1 {
				t.Errorf("%d profiles, %d markers; want 500, 1", n, marks)
			}
		})
	}
}

func TestPassword(t *testing.T) {
	h, err := hashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := hashPassword("s3cret")
	if h == h2 {
		t.Error("two hashes of one password are equal: salt not random")
	}
	if !strings.HasPrefix(h, fmt.Sprintf("pbkdf2-sha256$%d$", Iterations)) {
		t.Errorf("hash %q", h)
	}
	for _, tt := range []struct {
		hash, password string
		ok             bool
		err            bool
	}{
		{h, "s3cret", true, false},
		{h, "s3cre", false, false},
		{h, "", false, false},
		{"", "x", false, true},
		{"pbkdf2-sha1$1$AA$AA", "x", false, true},
		{"pbkdf2-sha256$0$AA$AA", "x", false, true},
		{"pbkdf2-sha256$x$AA$AA", "x", false, true},
		{"pbkdf2-sha256$1$!!$AA", "x", false, true},
		{"pbkdf2-sha256$1$AA$", "x", false, true},
	} {
		ok, err := checkPassword(tt.hash, tt.password)
		if ok != tt.ok || (err != nil) != tt.err {
			t.Errorf("checkPassword(%q, %q) = %v, %v", tt.hash, tt.password, ok, err)
		}
	}
}

// BenchmarkSignin measures a whole sign-in as a handler serves it: the
// query, the password check and the token. The password check dominates.
func BenchmarkSignin(b *testing.B) {
	srv, _ := newTestServer(b)
	body := signinBody("user7@flix.example", "flix", "p0013")
	b.ReportAllocs()
	for b.Loop() {
		resp, err := srv.Client().Post(srv.URL+"/signin", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}

func BenchmarkPassword(b *testing.B) {
	h, err := hashWithSalt("flix", datasetSalt, Iterations)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, _ := checkPassword(h, "flix"); !ok {
			b.Fatal("no match")
		}
	}
}
