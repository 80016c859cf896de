package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
	"github.com/shoal-dev/shoal/examples/flix/internal/progress"
)

// latest lists what a profile watched, the latest first and the lower
// title first at the same time, at most maxWatched, on a database created
// by this version and on one brought up from the first migration.
func TestWatchedLatest(t *testing.T) {
	for _, d := range flixtest.Dialects {
		for _, upgrade := range []bool{false, true} {
			name := d.Name + "/new"
			if upgrade {
				name = d.Name + "/upgraded"
			}
			t.Run(name, func(t *testing.T) {
				ctx := context.Background()
				db := d.Open(t, "recommendations")
				if upgrade {
					flixtest.Setup(t, func(ctx context.Context) error { return db.Migrate(ctx, "recommendations", migrations[:1]) })
				}
				var ws *watchedStore
				flixtest.Setup(t, func(ctx context.Context) (err error) {
					ws, _, err = openWatched(ctx, db)
					return err
				})
				report := func(p progress.Report) {
					t.Helper()
					payload, _ := json.Marshal(p)
					if err := db.Tx(ctx, func(tx *sql.Tx) error {
						return ws.handleProgress(ctx, tx, events.Event{Payload: payload})
					}); err != nil {
						t.Fatal(err)
					}
				}
				report(progress.Report{Profile: "p0001", Title: 7, At: 10})
				report(progress.Report{Profile: "p0001", Title: 3, At: 30})
				report(progress.Report{Profile: "p0001", Title: 9, At: 20})
				report(progress.Report{Profile: "p0001", Title: 5, At: 20})
				report(progress.Report{Profile: "p0001", Title: 3, At: 5}) // older: changes nothing
				report(progress.Report{Profile: "p0002", Title: 1, At: 40})
				if got, err := ws.latest(ctx, "p0001"); err != nil || !slices.Equal(got, []int{3, 5, 9, 7}) {
					t.Errorf("latest(p0001) = %v, %v; want [3 5 9 7]", got, err)
				}
				for i := range maxWatched {
					report(progress.Report{Profile: "p0003", Title: int64(i + 1), At: 1000 + int64(i%7)})
				}
				report(progress.Report{Profile: "p0003", Title: maxWatched + 1, At: 1})
				got, err := ws.latest(ctx, "p0003")
				if err != nil || len(got) != maxWatched || got[0] != 7 || got[1] != 14 || slices.Contains(got, maxWatched+1) {
					t.Errorf("latest(p0003) = %d titles from %v, %v; want %d from 7, 14, without the oldest", len(got), got[:min(len(got), 2)], err, maxWatched)
				}
			})
		}
	}
}

// BenchmarkWatchedLatest: what a recommendation reads of what its profile
// watched (10 titles), among 100 profiles, on SQLite.
func BenchmarkWatchedLatest(b *testing.B) {
	ctx := context.Background()
	db := flixtest.SQLite(b, "recommendations")
	var ws *watchedStore
	flixtest.Setup(b, func(ctx context.Context) (err error) {
		ws, _, err = openWatched(ctx, db)
		return err
	})
	for p := range 100 {
		for i := range 10 {
			if _, err := db.ExecContext(ctx, `INSERT INTO watched (profile, title, position_s, duration_s, at) VALUES ($1, $2, 0, 0, $3)`,
				fmt.Sprintf("p%04d", p), i+1, 1000*i+p%3); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if got, err := ws.latest(ctx, "p0042"); err != nil || len(got) != 10 {
			b.Fatalf("latest = %v, %v", got, err)
		}
	}
}
