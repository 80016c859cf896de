package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/client"
)

// SubjectHeader carries the profile id the gateway verified in the
// caller's token; the gateway strips copies sent by clients. Requests from
// other services inside the system come without it.
const SubjectHeader = "Shoal-Subject"

const maxProfileLen = 64

// catalogTitle is what the api reads of a catalog title.
type catalogTitle struct {
	ID       int    `json:"id"`
	Name     string `json:"name"`
	Year     int    `json:"year"`
	Maturity string `json:"maturity"`
	AddedAt  int64  `json:"added_at"`
}

// titleCache remembers the catalog's titles the api has seen, to name the
// titles other services list by id. Titles never change once added, so an
// entry is never stale; the cache is emptied if it ever outgrows
// maxCachedTitles (the dataset has 2,400).
type titleCache struct {
	mu     sync.RWMutex
	titles map[int]catalogTitle
}

const maxCachedTitles = 100_000

func (c *titleCache) get(id int) (catalogTitle, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.titles[id]
	return t, ok
}

func (c *titleCache) add(ts ...catalogTitle) {
	if len(ts) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.titles == nil || len(c.titles)+len(ts) > maxCachedTitles {
		c.titles = make(map[int]catalogTitle)
	}
	for _, t := range ts {
		c.titles[t.ID] = t
	}
}

// missing returns the ids of ids not cached, once each.
func (c *titleCache) missing(ids []int) []int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []int
	seen := map[int]bool{}
	for _, id := range ids {
		if _, ok := c.titles[id]; !ok && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// maturities caches profiles' maturity ratings ("kids", "teen", "adult"),
// which change rarely, for ttl.
type maturities struct {
	ttl time.Duration // zero means maturityTTL

	mu      sync.Mutex
	entries map[string]maturityEntry
}

type maturityEntry struct {
	maturity string
	at       time.Time
}

// errNoProfile: the profiles service says there is no such profile.
var errNoProfile = errors.New("no such profile")

// maturityTTL is how long a profile's maturity rating is cached.
const maturityTTL = 10 * time.Minute

// of returns profile's maturity rating, from the cache or else from the
// profiles service, called with c.
func (m *maturities) of(ctx context.Context, c *http.Client, profile string) (string, error) {
	m.mu.Lock()
	e, ok := m.entries[profile]
	m.mu.Unlock()
	if ok && time.Since(e.at) < budget(m.ttl, maturityTTL) {
		return e.maturity, nil
	}
	var p struct {
		Maturity string `json:"maturity"`
	}
	err := client.GetJSON(ctx, c, "http://profiles/profiles/"+url.PathEscape(profile), maxUpstreamBody, &p)
	if se := (*client.StatusError)(nil); errors.As(err, &se) && se.Code == http.StatusNotFound {
		return "", errNoProfile
	}
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries == nil || len(m.entries) > 100_000 { // a bound, far above the dataset's 500
		m.entries = map[string]maturityEntry{}
	}
	m.entries[profile] = maturityEntry{p.Maturity, time.Now()}
	return p.Maturity, nil
}

// mayWatch reports whether a profile of maturity profile may watch a
// title rated title: kids see "all", teens "all" and "teen", adults all.
// An unknown profile maturity is taken as kids: the safe side.
func mayWatch(profile, title string) bool {
	switch profile {
	case "adult":
		return true
	case "teen":
		return title == "all" || title == "teen"
	}
	return title == "all"
}

func checkProfile(p string) error {
	ok := len(p) >= 1 && len(p) <= maxProfileLen
	for i := 0; ok && i < len(p); i++ {
		c := p[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return fmt.Errorf("profile %q: want 1 to %d letters, digits, '-', '_' or '.'", p, maxProfileLen)
	}
	return nil
}
