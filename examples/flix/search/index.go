package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/store"
)

// topicTitles is the catalog's topic: one event per title added, whose
// payload is the title.
const topicTitles = "titles"

// migrations is the search schema's history (store.DB.Migrate). Terms are
// compared byte by byte (prefix ranges), which SQLite's TEXT does and
// PostgreSQL's does under COLLATE "C".
var migrations = []store.Migration{{
	SQL: titlesTable + `;
		CREATE TABLE search_terms (
			term   TEXT    NOT NULL,
			title  INTEGER NOT NULL,
			weight INTEGER NOT NULL,
			PRIMARY KEY (term, title)
		) WITHOUT ROWID;
		` + termsIndex,
	Postgres: titlesTable + `;
		CREATE TABLE search_terms (
			term   TEXT COLLATE "C" NOT NULL,
			title  INTEGER NOT NULL,
			weight INTEGER NOT NULL,
			PRIMARY KEY (term, title)
		);
		` + termsIndex,
}}

// titlesTable and termsIndex are the same in both dialects. They are part
// of the first migration, which databases have applied already: a schema
// change is a new migration, never an edit here.
const (
	titlesTable = `CREATE TABLE search_titles (
			id     INTEGER NOT NULL PRIMARY KEY,
			name   TEXT    NOT NULL,
			year   INTEGER NOT NULL,
			genres TEXT    NOT NULL
		)`
	termsIndex = `CREATE INDEX search_terms_by_title ON search_terms (title)`
)

// Weights of a term by where it comes from: a word of the name counts
// more than a genre or the year. A whole-word match counts twice a prefix.
const (
	weightName  = 3
	weightGenre = 2
	weightYear  = 2
)

// Limits: a query's length and terms, a term's length (longer words are
// indexed and searched by their first maxTermLen bytes).
const (
	maxQueryLen   = 200
	maxQueryTerms = 8
	maxTermLen    = 40
)

// Title is what search keeps of a catalog title, and answers with.
type Title struct {
	ID     int      `json:"id"`
	Name   string   `json:"name"`
	Year   int      `json:"year"`
	Genres []string `json:"genres"`
}

// index is the full-text index over titles' names, genres and years: a
// table of terms (lower-case words), each with the titles it occurs in.
// A query's words match terms they are prefixes of ("harb" finds
// "Harbor"), and a title must match every word.
type index struct {
	db *store.DB
}

// openIndex migrates the index in db, and returns it with the inbox that
// feeds it the catalog's "titles" events.
func openIndex(ctx context.Context, db *store.DB) (*index, *events.Inbox, error) {
	ix := &index{db: db}
	inbox := events.NewInbox(db)
	inbox.Handle(topicTitles, ix.handleTitle)
	if err := db.Migrate(ctx, "search", migrations); err != nil {
		return nil, nil, err
	}
	return ix, inbox, inbox.Migrate(ctx)
}

// handleTitle indexes the title of a "titles" event, replacing what was
// indexed under its id: delivering an event again changes nothing. An
// event that is not a title is logged and dropped: delivering it again
// would not make it one.
func (ix *index) handleTitle(ctx context.Context, tx *sql.Tx, ev events.Event) error {
	var t Title
	if err := json.Unmarshal(ev.Payload, &t); err != nil || t.ID < 1 {
		slog.Warn("search: dropping a titles event that is not a title", "event", ev.ID, "payload", string(ev.Payload[:min(len(ev.Payload), 200)]), "err", err)
		return nil
	}
	return ix.put(ctx, tx, t)
}

func (ix *index) put(ctx context.Context, tx *sql.Tx, t Title) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO search_titles (id, name, year, genres) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, year = excluded.year, genres = excluded.genres`,
		t.ID, t.Name, t.Year, strings.Join(t.Genres, ",")); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM search_terms WHERE title = $1`, t.ID); err != nil {
		return err
	}
	terms := termsOf(t)
	// A few statements of termsPerInsert rows each: one statement for a
	// title of tens of thousands of words would pass the engine's limit
	// on parameters, and the event would fail at every delivery.
	for chunk := range slices.Chunk(slices.Sorted(maps.Keys(terms)), termsPerInsert) {
		var q strings.Builder
		q.WriteString(`INSERT INTO search_terms (term, title, weight) VALUES `)
		args := []any{t.ID}
		for i, term := range chunk {
			if i > 0 {
				q.WriteByte(',')
			}
			args = append(args, term, terms[term])
			fmt.Fprintf(&q, "($%d,$1,$%d)", len(args)-1, len(args))
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// termsPerInsert bounds the rows of one INSERT of terms: 2 parameters a
// row, far below SQLite's 32,766 and PostgreSQL's 65,535.
const termsPerInsert = 1000

// termsOf returns the terms of t, each with its highest weight.
func termsOf(t Title) map[string]int {
	terms := map[string]int{}
	add := func(text string, w int) {
		for _, term := range words(text) {
			terms[term] = max(terms[term], w)
		}
	}
	add(t.Name, weightName)
	for _, g := range t.Genres {
		add(g, weightGenre)
	}
	if t.Year > 0 {
		add(fmt.Sprint(t.Year), weightYear)
	}
	return terms
}

// words splits text into lower-case terms: runs of letters and digits,
// cut to maxTermLen bytes.
func words(text string) []string {
	fields := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	for i, f := range fields {
		if len(f) > maxTermLen {
			f = f[:maxTermLen]
			for !utf8.ValidString(f) { // do not cut a character in two
				f = f[:len(f)-1]
			}
			fields[i] = f
		}
	}
	return fields
}

// search returns up to limit titles matching every word of query, best
// first: by the weights of the terms they match (whole words twice
// prefixes), then newest year, then id.
func (ix *index) search(ctx context.Context, query string, limit int) ([]Title, error) {
	terms := slices.Compact(slices.Sorted(slices.Values(words(query))))
	if len(terms) > maxQueryTerms {
		terms = terms[:maxQueryTerms]
	}
	out := []Title{}
	if len(terms) == 0 {
		return out, nil
	}
	// One subquery per word, each giving a title's best match for it;
	// a title found by every subquery matched every word.
	var q strings.Builder
	q.WriteString(`SELECT t.id, t.name, t.year, t.genres FROM (SELECT title, SUM(score) AS score FROM (`)
	var args []any
	for i, term := range terms {
		if i > 0 {
			q.WriteString(` UNION ALL `)
		}
		args = append(args, term, prefixEnd(term))
		fmt.Fprintf(&q, `SELECT title, MAX(CASE WHEN term = $%d THEN 2 * weight ELSE weight END) AS score
			FROM search_terms WHERE term >= $%d AND term < $%d GROUP BY title`, len(args)-1, len(args)-1, len(args))
	}
	args = append(args, len(terms), limit)
	fmt.Fprintf(&q, `) AS matches GROUP BY title HAVING COUNT(*) = $%d) AS m
		JOIN search_titles t ON t.id = m.title ORDER BY m.score DESC, t.year DESC, t.id LIMIT $%d`, len(args)-1, len(args))
	rows, err := ix.db.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var t Title
		var gs string
		if err := rows.Scan(&t.ID, &t.Name, &t.Year, &gs); err != nil {
			return nil, err
		}
		t.Genres = strings.Split(gs, ",")
		out = append(out, t)
	}
	return out, rows.Err()
}

// prefixEnd returns a string above every string that starts with prefix
// and below every other string above prefix (byte order, which is code
// point order in UTF-8), so that term >= prefix AND term < prefixEnd(prefix)
// selects the terms prefix starts: prefix with its last character
// incremented. It stays valid UTF-8, which PostgreSQL requires of text.
func prefixEnd(prefix string) string {
	r, n := utf8.DecodeLastRuneInString(prefix)
	next := r + 1
	if next >= 0xd800 && next < 0xe000 { // surrogates are not characters
		next = 0xe000
	}
	return prefix[:len(prefix)-n] + string(next)
}
