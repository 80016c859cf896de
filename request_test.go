package shoal

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestReadJSON(t *testing.T) {
	type body struct {
		Name  string   `json:"name"`
		Score int      `json:"score"`
		Stars uint8    `json:"stars"`
		Tags  []string `json:"tags"`
	}
	for _, tt := range []struct {
		name, in string
		want     body
		wantErr  string
	}{
		{"ok", `{"name":"ada","score":3}`, body{Name: "ada", Score: 3}, ""},
		{"empty", ``, body{}, "body: empty; want a JSON object"},
		{"cut short", `{"name":"ada"`, body{}, "body: the JSON ends early; want a whole JSON object"},
		{"not JSON", `{"name":ada}`, body{}, "body: not JSON at byte 9: invalid character 'a' looking for beginning of value"},
		{"unknown field", `{"name":"ada","pin":1}`, body{}, `body: unknown field "pin"`},
		{"string for a number", `{"score":"3"}`, body{}, `body: field "score" is a string; want an integer`},
		{"fraction for an integer", `{"score":3.5}`, body{}, `body: field "score" is 3.5; want an integer`},
		{"out of range", `{"stars":300}`, body{}, `body: field "stars" is 300; want an integer from 0 to 255`},
		{"number for a string", `{"name":7}`, body{}, `body: field "name" is a number; want a string`},
		{"object for an array", `{"tags":{}}`, body{}, `body: field "tags" is an object; want an array`},
		{"array for the body", `[1]`, body{}, `body: is an array; want an object`},
		{"two objects", `{}{}`, body{}, "body: want a single JSON object"},
		{"too big", `{"name":"` + strings.Repeat("a", 100) + `"}`, body{}, "body: want at most 64 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got body
			err := ReadJSON(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader(tt.in)), 64, &got)
			if tt.wantErr == "" && (err != nil || !reflect.DeepEqual(got, tt.want)) || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Errorf("ReadJSON(%s) = %+v, %v; want %+v, %q", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestQueryInt(t *testing.T) {
	tests := map[string]struct {
		want   int
		answer int // the status QueryInt answered with; 0: none, the value is good
	}{
		"": {20, 0}, "limit=": {20, 0}, "limit=1": {1, 0}, "limit=200": {200, 0},
		"limit=0": {0, 400}, "limit=201": {0, 400}, "limit=x": {0, 400},
	}
	for query, tt := range tests {
		w := httptest.NewRecorder()
		got, ok := QueryInt(w, httptest.NewRequest("GET", "/?"+query, nil), "limit", 20, 1, 200)
		answered := 0
		if !ok {
			answered = w.Code
		}
		if got != tt.want || answered != tt.answer || !ok && !strings.Contains(w.Body.String(), `"code":"invalid_argument","message":"limit=`) {
			t.Errorf("%q: %d, answered %d %s; want %d, answered %d", query, got, answered, w.Body, tt.want, tt.answer)
		}
	}
}

func TestWriteUnavailable(t *testing.T) {
	logs := newLogRecorder()
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(logs.logger())
	expired, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	left, leave := context.WithCancel(context.Background())
	leave()
	for _, tt := range []struct {
		name      string
		ctx       context.Context
		wantLevel string
	}{
		{"failed", context.Background(), "ERROR"},
		{"deadline passed", expired, "WARN"},
		{"caller left", left, "DEBUG"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			WriteUnavailable(w, httptest.NewRequestWithContext(tt.ctx, "GET", "/titles/7", nil), "the catalog store", errors.New("database is locked"))
			if w.Code != 503 || w.Header().Get("Retry-After") != "1" ||
				strings.TrimSpace(w.Body.String()) != `{"error":{"code":"unavailable","message":"the catalog store is unavailable; retry shortly"}}` {
				t.Errorf("answer %d %v %s", w.Code, w.Header(), w.Body)
			}
			if out := logs.text(); out != tt.wantLevel+" the catalog store failed method=GET path=/titles/7 err=database is locked" {
				t.Errorf("log %s, want %s", out, tt.wantLevel)
			}
		})
	}
}
