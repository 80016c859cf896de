package main

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
)

// FuzzCheckPassword: whatever a stored hash holds (a database is input
// too), checking a password against it never panics; a hash that is not
// pbkdf2-sha256$<iterations>$<salt>$<key> is an error, never a match; and
// a match means the password derives the stored key. Hashes the service
// writes match their password and nothing else.
func FuzzCheckPassword(f *testing.F) {
	h, err := hashWithSalt("s3cret", []byte("0123456789abcdef"), 2)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct{ hash, password string }{
		{h, "s3cret"}, {h, "s3cre"}, {h, ""},
		{"", "x"}, {"pbkdf2-sha1$1$AA$AA", "x"}, {"pbkdf2-sha256$0$AA$AA", "x"}, {"pbkdf2-sha256$-1$AA$AA", "x"},
		{"pbkdf2-sha256$x$AA$AA", "x"}, {"pbkdf2-sha256$1$!!$AA", "x"}, {"pbkdf2-sha256$1$AA$", "x"},
		{"pbkdf2-sha256$1$$AA", "x"}, {"pbkdf2-sha256$1$AA$AA$AA", "x"}, {"pbkdf2-sha256$99999999999999999999$AA$AA", "x"},
		{"pbkdf2-sha256$1$AA==$AA", "x"}, {"pbkdf2-sha256$01$AA$AA", "x"},
	} {
		f.Add(s.hash, s.password)
	}
	f.Fuzz(func(t *testing.T, hash, password string) {
		parts := strings.Split(hash, "$")
		if len(parts) == 4 {
			if n, err := strconv.Atoi(parts[1]); err == nil && n > 1000 {
				t.Skip("too many iterations for a fuzz run") // valid, and only slow
			}
		}
		ok, err := checkPassword(hash, password)
		if err != nil {
			if ok {
				t.Fatalf("checkPassword(%q, %q): a match and an error %v", hash, password, err)
			}
			return
		}
		if len(parts) != 4 || parts[0] != hashScheme {
			t.Fatalf("checkPassword(%q): no error for a hash of another form", hash)
		}
		if ok {
			iter, _ := strconv.Atoi(parts[1])
			enc := base64.RawStdEncoding
			salt, err1 := enc.DecodeString(parts[2])
			want, err2 := enc.DecodeString(parts[3])
			got, err3 := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
			if err1 != nil || err2 != nil || err3 != nil || subtle.ConstantTimeCompare(got, want) != 1 {
				t.Fatalf("checkPassword(%q, %q) matched; the derivation says otherwise", hash, password)
			}
		}
		// What the service writes for this password matches it alone.
		mine, err := hashWithSalt(password, []byte(hash+"salt"), 1)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := checkPassword(mine, password); !ok || err != nil {
			t.Fatalf("own hash of %q: %v, %v", password, ok, err)
		}
		if ok, _ := checkPassword(mine, password+"x"); ok {
			t.Fatalf("own hash of %q matches another password", password)
		}
	})
}
