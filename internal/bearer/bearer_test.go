package bearer

import (
	"net/http/httptest"
	"testing"
)

func TestToken(t *testing.T) {
	for _, tt := range []struct {
		headers []string
		want    string
	}{
		{nil, ""},
		{[]string{"Bearer abc"}, "abc"},
		{[]string{"bearer abc"}, "abc"},
		{[]string{"BEARER  abc "}, "abc"},
		{[]string{"Basic YWJj"}, ""},
		{[]string{"Bearer"}, ""},
		{[]string{"Bearer "}, ""},
		{[]string{"Bearerabc"}, ""},
		{[]string{"Bearer abc", "Bearer def"}, ""},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		for _, h := range tt.headers {
			r.Header.Add("Authorization", h)
		}
		if got := Token(r); got != tt.want {
			t.Errorf("Authorization %q: Token = %q, want %q", tt.headers, got, tt.want)
		}
	}
}
