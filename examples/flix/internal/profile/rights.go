package profile

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/client"
)

// Rights is what the profiles service says a profile may watch.
type Rights struct {
	Maturity string   `json:"maturity"`  // the profile's: "kids", "teen" or "adult"
	MayWatch []string `json:"may_watch"` // the title maturities it may watch
}

// Allows reports whether a title of the given maturity may be shown. A
// title without one is in no list: a gap in the catalog opens nothing.
func (r Rights) Allows(titleMaturity string) bool {
	return slices.Contains(r.MayWatch, titleMaturity)
}

// Unknown is what a profile that could not be looked up is shown: titles
// rated "all", which the catalog rates so because they suit everyone.
var Unknown = Rights{MayWatch: []string{"all"}}

// ErrNotFound: the profiles service says there is no such profile.
var ErrNotFound = errors.New("no such profile")

// maxAnswer bounds what is read of the profiles service's answer.
const maxAnswer = 64 << 10

// Lookup asks the profiles service, through c, for the rights of profile id.
func Lookup(ctx context.Context, c *http.Client, id string) (Rights, error) {
	var r Rights
	err := client.GetJSON(ctx, c, "http://profiles/profiles/"+url.PathEscape(id), maxAnswer, &r)
	if se := (*client.StatusError)(nil); errors.As(err, &se) && se.Code == http.StatusNotFound {
		return Rights{}, ErrNotFound
	}
	return r, err
}

// DefaultTTL is how long a Cache keeps a profile's rights: they change
// rarely.
const DefaultTTL = 10 * time.Minute

// maxCached bounds a Cache: far above the dataset's 500 profiles. A full
// cache starts over empty.
const maxCached = 100_000

// Cache keeps profiles' rights for TTL, looked up through Client. Its
// fields are set before first use; it is safe for concurrent use.
type Cache struct {
	Client *http.Client
	TTL    time.Duration // zero means DefaultTTL

	mu      sync.Mutex
	entries map[string]entry
}

type entry struct {
	rights Rights
	at     time.Time
}

// Rights returns the rights of profile id, from the cache or else from
// the profiles service. Failures are not cached.
func (c *Cache) Rights(ctx context.Context, id string) (Rights, error) {
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && time.Since(e.at) < cmp.Or(c.TTL, DefaultTTL) {
		return e.rights, nil
	}
	r, err := Lookup(ctx, c.Client, id)
	if err != nil {
		return Rights{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxCached {
		c.entries = map[string]entry{}
	}
	c.entries[id] = entry{r, time.Now()}
	return r, nil
}
