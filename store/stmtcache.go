package store

import (
	"container/list"
	"context"
	"database/sql/driver"
	"fmt"
	"reflect"
	"strings"
)

// Statement cache (SQLite). database/sql keeps no statements for string
// queries, and modernc.org/sqlite's ExecContext and QueryContext prepare
// the query, run it and finalize it at every call: under load, parsing and
// planning the same few statements again was ~5% of all CPU. So each
// connection of a SQLite pool keeps its last prepared statements, keyed by
// the query's text, and runs them again: the driver resets a statement it
// ran (after Exec, at its rows' Close) instead of finalizing it. Code
// using DB, its transactions and its *sql.DB sees no difference.
//
// What takes the driver's own path, unchanged: a text that holds a ';'
// other than a final one (a script such as a migration, or a ';' in a
// literal: never cached, so that only single statements are); a statement
// whose rows are still open (database/sql allows a second query in a Tx
// before the first's rows are closed: it gets a statement of its own,
// prepared and finalized as before). A query that fails to prepare fails
// with the driver's error, as before, and is not cached; a statement whose
// run fails is finalized and dropped, so that one that errs is never run
// again. Closing the connection finalizes its statements.

// stmtCacheSize bounds the statements each SQLite connection keeps, least
// recently used dropped first; 0 turns the cache off. A service and the
// SDK's packages run a few dozen distinct statements. A variable, so that
// tests and benchmarks may change it before opening a DB.
var stmtCacheSize = 128

// sqliteConn is what modernc.org/sqlite's connections implement and
// database/sql uses: cachingConn keeps all of it (sqlite.NewConnector
// documents the list).
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// preparedStmt is a statement modernc.org/sqlite prepared.
type preparedStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// connector opens the connections of a SQLite pool, each with a cache of
// size statements.
type connector struct {
	driver.Connector
	size int
}

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := dc.(sqliteConn)
	if !ok {
		dc.Close()
		return nil, fmt.Errorf("store: the SQLite driver's connection, a %T, lacks an interface database/sql uses", dc)
	}
	return newCachingConn(sc, c.size), nil
}

// cachingConn is a SQLite connection with a statement cache. database/sql
// calls a connection, and the rows it returned, from one goroutine at a
// time: no lock.
type cachingConn struct {
	sqliteConn
	size  int
	stmts map[string]*cachedStmt
	lru   *list.List // of *cachedStmt, most recently used first
}

func newCachingConn(c sqliteConn, size int) *cachingConn {
	return &cachingConn{sqliteConn: c, size: size, stmts: map[string]*cachedStmt{}, lru: list.New()}
}

// cachedStmt is a prepared statement of a cachingConn.
type cachedStmt struct {
	preparedStmt
	query string
	// elem is the statement's place in lru; nil once dropped from the
	// cache.
	elem *list.Element
	// rowsOpen: the rows of a query run by the statement are not closed
	// yet. Nobody else may run it, and if it is dropped meanwhile the
	// rows' Close finalizes it.
	rowsOpen bool
}

// Unwrap returns the driver's connection, as modernc.org/sqlite's
// functions that take a *sql.Conn (sqlite.Limit) expect of a wrapper.
func (c *cachingConn) Unwrap() driver.Conn { return c.sqliteConn }

// Close finalizes the connection's statements and closes it.
func (c *cachingConn) Close() error {
	for _, s := range c.stmts {
		// Its error, if any, is that of the statement's last run,
		// which was reported then.
		s.Close()
	}
	clear(c.stmts)
	c.lru.Init()
	return c.sqliteConn.Close()
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.sqliteConn.ExecContext(ctx, query, args)
	}
	res, err := s.ExecContext(ctx, args)
	if err != nil {
		c.drop(s)
	}
	return res, err
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.sqliteConn.QueryContext(ctx, query, args)
	}
	rows, err := s.QueryContext(ctx, args)
	if err != nil {
		c.drop(s)
		return nil, err
	}
	s.rowsOpen = true
	return &cachedRows{Rows: rows, conn: c, stmt: s}, nil
}

// stmt returns query's cached statement, prepared on a miss; nil if query
// takes the driver's own path (a script, a statement whose rows are open).
// The error is the driver's, that its own path would have returned.
func (c *cachingConn) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	if s, ok := c.stmts[query]; ok {
		if s.rowsOpen {
			return nil, nil
		}
		c.lru.MoveToFront(s.elem)
		return s, nil
	}
	if i := strings.IndexByte(query, ';'); i >= 0 && i != len(query)-1 {
		return nil, nil
	}
	ds, err := c.sqliteConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	ps, ok := ds.(preparedStmt)
	if !ok {
		ds.Close()
		return nil, nil
	}
	if c.lru.Len() >= c.size {
		c.drop(c.lru.Back().Value.(*cachedStmt))
	}
	s := &cachedStmt{preparedStmt: ps, query: query}
	s.elem = c.lru.PushFront(s)
	c.stmts[query] = s
	return s, nil
}

// drop removes s from the cache and finalizes it, or leaves that to its
// open rows' Close.
func (c *cachingConn) drop(s *cachedStmt) {
	c.lru.Remove(s.elem)
	delete(c.stmts, s.query)
	s.elem = nil
	if !s.rowsOpen {
		s.Close() // the error of its last run, reported then
	}
}

// cachedRows are the rows of a cached statement: closing them resets the
// statement (the driver's rows do) and frees it for its next run.
// database/sql's optional interfaces of rows are forwarded, and where the
// driver's rows lack one, answered as database/sql would without it.
type cachedRows struct {
	driver.Rows
	conn *cachingConn
	stmt *cachedStmt // nil once closed
}

func (r *cachedRows) Close() error {
	s := r.stmt
	if s == nil {
		return nil
	}
	r.stmt = nil
	err := r.Rows.Close()
	s.rowsOpen = false
	switch {
	case s.elem == nil: // dropped while the rows were open
		s.Close()
	case err != nil:
		r.conn.drop(s)
	}
	return err
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *cachedRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *cachedRows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}
