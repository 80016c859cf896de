package main

import "fmt"

// The dataset generated at first start: accounts k = 1..Accounts with email
// user<k>@flix.example and password DatasetPassword, each with two
// profiles, p<2k-1> and p<2k> (p0001..p0500). The second profile of every
// fifth account is a kids profile.
const (
	Accounts        = 250
	ProfilesPerAcct = 2
	DatasetPassword = "flix"
	datasetName     = "flix-v1" // the marker row: bump to regenerate
)

// datasetSalt is the one salt of the dataset's password hash. All dataset
// accounts have the same password, so they share one hash, computed once:
// 250 separate hashes would cost 250 times the sign-in work factor at every
// first start (most of a second at Iterations), for no gain, since the
// password is public. Accounts created otherwise would get their own salt.
var datasetSalt = []byte("flix-dataset-v1!")

// Account is a customer: who signs in.
type Account struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
}

// Profile is one viewer of an account: what sessions, history and
// recommendations are about, and the subject of its tokens.
type Profile struct {
	ID       string `json:"id"`
	Account  int64  `json:"account"`
	Name     string `json:"name"`
	Maturity string `json:"maturity"` // "kids", "teen" or "adult"
	// MayWatch lists the title maturities the profile may watch; see
	// mayWatch. Other services check titles against it.
	MayWatch []string `json:"may_watch"`
}

// Maturity levels of profiles.
const (
	MaturityKids  = "kids"
	MaturityTeen  = "teen"
	MaturityAdult = "adult"
)

// mayWatch is the flix maturity rule, kept in this service alone: the
// title maturity ratings (the catalog's "all", "teen", "adult") a profile
// of the given maturity may watch. Kids watch "all", teens "all" and
// "teen", adults every one; an unknown level gets what kids get. Every
// profile leaves this service with the list, and callers check titles
// against it rather than knowing the rule.
func mayWatch(maturity string) []string {
	switch maturity {
	case MaturityAdult:
		return []string{"all", "teen", "adult"}
	case MaturityTeen:
		return []string{"all", "teen"}
	}
	return []string{"all"}
}

var firstNames = []string{
	"Ada", "Bruno", "Chloé", "Dmitri", "Elif", "Farah", "Gustavo", "Hana",
	"Ivo", "Jun", "Kemi", "Lars", "Mei", "Nikolai", "Olu", "Priya",
	"Quinn", "Rosa", "Sami", "Tove", "Uma", "Viktor", "Wren", "Ximena",
	"Yusuf", "Zofia", "Anouk", "Bashir", "Carmen", "Dara", "Emeka",
}

// accountEmail is account k's email.
func accountEmail(k int64) string { return fmt.Sprintf("user%d@flix.example", k) }

// profileID is the id of the i-th (0-based) profile of account k.
func profileID(k int64, i int) string { return fmt.Sprintf("p%04d", (k-1)*ProfilesPerAcct+int64(i)+1) }

// datasetProfiles returns account k's profiles.
func datasetProfiles(k int64) []Profile {
	owner := firstNames[int(k-1)%len(firstNames)]
	ps := make([]Profile, ProfilesPerAcct)
	for i := range ps {
		p := Profile{ID: profileID(k, i), Account: k, Name: owner, Maturity: MaturityAdult}
		if i == 1 {
			p.Name = firstNames[int(k*7+3)%len(firstNames)]
			if k%5 == 0 {
				p.Name = owner + "'s kids"
				p.Maturity = MaturityKids
			}
		}
		ps[i] = p
	}
	return ps
}
