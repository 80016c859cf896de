package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(newHandler(generate(datasetSeed, datasetSize)))
	defer srv.Close()
	type page struct {
		Titles               []Title
		Total, Limit, Offset int
	}
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantCode   string // error code
		wantMsg    string // substring of the error message
		check      func(t *testing.T, body []byte)
	}{
		{name: "default page", path: "/titles", wantStatus: 200, check: func(t *testing.T, body []byte) {
			var p page
			mustDecode(t, body, &p)
			if len(p.Titles) != defaultLimit || p.Titles[0].ID != 1 || p.Total != datasetSize || p.Limit != defaultLimit || p.Offset != 0 {
				t.Errorf("page: %d titles, first %d, total %d, limit %d, offset %d", len(p.Titles), p.Titles[0].ID, p.Total, p.Limit, p.Offset)
			}
		}},
		{name: "limit and offset", path: "/titles?limit=5&offset=100", wantStatus: 200, check: func(t *testing.T, body []byte) {
			var p page
			mustDecode(t, body, &p)
			if len(p.Titles) != 5 || p.Titles[0].ID != 101 || p.Titles[4].ID != 105 {
				t.Errorf("got %d titles from %d", len(p.Titles), p.Titles[0].ID)
			}
		}},
		{name: "last partial page", path: "/titles?limit=50&offset=2390", wantStatus: 200, check: func(t *testing.T, body []byte) {
			var p page
			mustDecode(t, body, &p)
			if len(p.Titles) != 10 || p.Titles[9].ID != datasetSize {
				t.Errorf("got %d titles", len(p.Titles))
			}
		}},
		{name: "past the end", path: "/titles?offset=999999", wantStatus: 200, check: func(t *testing.T, body []byte) {
			var p page
			mustDecode(t, body, &p)
			if p.Titles == nil || len(p.Titles) != 0 {
				t.Errorf("want an empty list, got %s", body)
			}
		}},
		{name: "one title", path: "/titles/3", wantStatus: 200, check: func(t *testing.T, body []byte) {
			var ti Title
			mustDecode(t, body, &ti)
			if ti.ID != 3 || ti.Name != "Signal of Avalon" {
				t.Errorf("got %+v", ti)
			}
		}},
		{name: "last title", path: "/titles/2400", wantStatus: 200},
		{name: "limit zero", path: "/titles?limit=0", wantStatus: 400, wantCode: "invalid_argument", wantMsg: `limit="0"`},
		{name: "limit too big", path: "/titles?limit=201", wantStatus: 400, wantCode: "invalid_argument", wantMsg: "limit"},
		{name: "limit not a number", path: "/titles?limit=ten", wantStatus: 400, wantCode: "invalid_argument", wantMsg: `limit="ten"`},
		{name: "negative offset", path: "/titles?offset=-1", wantStatus: 400, wantCode: "invalid_argument", wantMsg: `offset="-1"`},
		{name: "unknown id", path: "/titles/2401", wantStatus: 404, wantCode: "not_found", wantMsg: `"2401"`},
		{name: "id zero", path: "/titles/0", wantStatus: 404, wantCode: "not_found"},
		{name: "id not a number", path: "/titles/abc", wantStatus: 404, wantCode: "not_found", wantMsg: `"abc"`},
		{name: "unknown route", path: "/nope", wantStatus: 404, wantCode: "not_found"},
		{name: "wrong method", method: "POST", path: "/titles/1", wantStatus: 405, wantCode: "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			req, _ := http.NewRequest(method, srv.URL+tt.path, nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body json.RawMessage
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tt.wantCode != "" {
				var e struct {
					Error struct{ Code, Message string }
				}
				mustDecode(t, body, &e)
				if e.Error.Code != tt.wantCode || !strings.Contains(e.Error.Message, tt.wantMsg) {
					t.Errorf("error %+v, want code %q with %q", e.Error, tt.wantCode, tt.wantMsg)
				}
			}
			if tt.check != nil {
				tt.check(t, body)
			}
		})
	}
}

func mustDecode(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
}
