package shoal

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestReadJSON(t *testing.T) {
	type body struct {
		Name  string `json:"name"`
		Score int    `json:"score"`
	}
	for _, tt := range []struct {
		name, in string
		want     body
		wantErr  string
	}{
		{"ok", `{"name":"ada","score":3}`, body{"ada", 3}, ""},
		{"empty", ``, body{}, "body: want a JSON object (EOF)"},
		{"unknown field", `{"name":"ada","pin":1}`, body{}, `body: want a JSON object (json: unknown field "pin")`},
		{"wrong type", `{"score":"3"}`, body{}, "body: want a JSON object"},
		{"two objects", `{}{}`, body{}, "body: want a single JSON object"},
		{"too big", `{"name":"` + strings.Repeat("a", 100) + `"}`, body{}, "body: want at most 64 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got body
			err := ReadJSON(httptest.NewRecorder(), httptest.NewRequest("POST", "/", strings.NewReader(tt.in)), 64, &got)
			if tt.wantErr == "" && (err != nil || got != tt.want) || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
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
