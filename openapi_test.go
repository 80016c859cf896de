package shoal

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDerivedDocument(t *testing.T) {
	rt := Router{Info: OpenAPIInfo{Title: "catalog", Version: "v2"}}
	rt.HandleFunc("GET /titles/{id}", echo)
	rt.HandleFunc("POST /titles", echo)
	rt.HandleFunc("GET /files/{path...}", echo)
	rt.HandleFunc("GET /{$}", echo)
	rt.HandleFunc("/any", echo) // no method: no operation
	rt.Describe("GET /titles/{id}", "One title", "404 for an unknown id.")

	doc, err := rt.Document()
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		OpenAPI string      `json:"openapi"`
		Info    OpenAPIInfo `json:"info"`
		Paths   map[string]map[string]struct {
			Summary     string `json:"summary"`
			Description string `json:"description"`
			Parameters  []struct {
				Name, In string
				Required bool
			} `json:"parameters"`
			Responses map[string]any `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	if d.OpenAPI != "3.1.0" || d.Info != rt.Info {
		t.Errorf("openapi %q, info %+v", d.OpenAPI, d.Info)
	}
	ops := map[string]string{} // "METHOD path" → summary
	for path, item := range d.Paths {
		for m, op := range item {
			ops[strings.ToUpper(m)+" "+path] = op.Summary
			if len(op.Responses) == 0 {
				t.Errorf("%s %s has no responses", m, path)
			}
		}
	}
	want := map[string]string{
		"GET /titles/{id}":  "One title",
		"POST /titles":      "",
		"GET /files/{path}": "",
		"GET /":             "",
		"GET /openapi.json": "This document",
	}
	if diff := cmp.Diff(want, ops); diff != "" {
		t.Errorf("operations (-want +got):\n%s", diff)
	}
	op := d.Paths["/titles/{id}"]["get"]
	if op.Description != "404 for an unknown id." || len(op.Parameters) != 1 || op.Parameters[0].Name != "id" ||
		op.Parameters[0].In != "path" || !op.Parameters[0].Required {
		t.Errorf("GET /titles/{id}: %+v", op)
	}
	if p := d.Paths["/files/{path}"]["get"].Parameters; len(p) != 1 || p[0].Name != "path" {
		t.Errorf("GET /files/{path} parameters %+v", p)
	}

	// What is served is what Document returns.
	if got := send(&rt, "GET", "/openapi.json"); got.status != 200 || got.body != string(doc) {
		t.Errorf("GET /openapi.json = %d %s", got.status, got.body)
	}
}

func TestDerivedDocumentDefaults(t *testing.T) {
	var rt Router
	doc, err := rt.Document()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), `"info":{"title":"API","version":"0"}`) {
		t.Errorf("document %s", doc)
	}
}

func TestDescribeUnknownPattern(t *testing.T) {
	var rt Router
	rt.HandleFunc("GET /a", echo)
	rt.Describe("GET /b", "B", "")
	_, err := rt.Document()
	if err == nil || !strings.Contains(err.Error(), `Describe("GET /b")`) {
		t.Fatalf("Document: %v, want an error naming Describe(\"GET /b\")", err)
	}
	if got := send(&rt, "GET", "/openapi.json"); got.status != 500 || !strings.Contains(got.body, `GET /b`) {
		t.Errorf("GET /openapi.json = %d %s, want 500 naming GET /b", got.status, got.body)
	}
}

func TestHandWrittenDocument(t *testing.T) {
	routes := func(rt *Router) {
		rt.HandleFunc("GET /titles/{id}", echo)
		rt.HandleFunc("POST /titles", echo)
		rt.HandleFunc("GET /files/{path...}", echo)
	}
	tests := []struct {
		name    string
		doc     string
		wantErr string // "": none
	}{
		{"exact", `{"openapi": "3.1.0", "paths": {
			"/titles/{id}": {"get": {}, "parameters": []}, "/titles": {"post": {}}, "/files/{path}": {"get": {}}}}`, ""},
		{"HEAD and the document itself may be described", `{"openapi": "3.0.3", "paths": {
			"/titles/{id}": {"get": {}, "head": {}}, "/titles": {"post": {}}, "/files/{path}": {"get": {}},
			"/openapi.json": {"get": {}}}}`, ""},
		{"a route missing", `{"openapi": "3.1.0", "paths": {"/titles": {"post": {}}, "/files/{path}": {"get": {}}}}`,
			"OpenAPI document does not match the routes: GET /titles/{id} is served but not described"},
		{"an operation not served, a wildcard misnamed", `{"openapi": "3.1.0", "paths": {
			"/titles/{title}": {"get": {}}, "/titles": {"post": {}, "delete": {}}, "/files/{path}": {"get": {}}}}`,
			"OpenAPI document does not match the routes: DELETE /titles is described but no route serves it; " +
				"GET /titles/{id} is served but not described; GET /titles/{title} is described but no route serves it"},
		{"not OpenAPI 3", `{"swagger": "2.0", "paths": {"/titles/{id}": {"get": {}}, "/titles": {"post": {}}, "/files/{path}": {"get": {}}}}`,
			`OpenAPI document does not match the routes: "openapi" is ""; want 3.x`},
		{"not JSON", `{"openapi": `, "OpenAPI document: unexpected end of JSON input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := Router{OpenAPI: []byte(tt.doc)}
			routes(&rt)
			doc, err := rt.Document()
			switch {
			case tt.wantErr != "":
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Document: %v\nwant: %s", err, tt.wantErr)
				}
			case err != nil || string(doc) != tt.doc:
				t.Fatalf("Document: %v", err)
			default:
				if got := send(&rt, "GET", "/openapi.json"); got.status != 200 || got.body != tt.doc {
					t.Errorf("GET /openapi.json = %d %s", got.status, got.body)
				}
			}
		})
	}
}

// A service whose hand-written document does not match its routes does not
// start: the mismatch is a bug, as a conflicting pattern is.
func TestRunRefusesMismatchedDocument(t *testing.T) {
	rt := Router{OpenAPI: []byte(`{"openapi": "3.1.0", "paths": {"/b": {"get": {}}}}`)}
	rt.HandleFunc("GET /a", echo)
	svc, err := New(Config{Name: "docs", Logger: slog.New(slog.DiscardHandler)}, &rt)
	if err != nil {
		t.Fatal(err)
	}
	err = svc.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "GET /a is served but not described") {
		t.Fatalf("Run: %v, want the mismatch", err)
	}
}

func TestOpenAPIPath(t *testing.T) {
	for _, tt := range []struct {
		path, want string
		names      []string
	}{
		{"/titles/{id}/episodes", "/titles/{id}/episodes", []string{"id"}},
		{"/files/{path...}", "/files/{path}", []string{"path"}},
		{"/{$}", "/", nil},
		{"/a/{x}/{$}", "/a/{x}/", []string{"x"}},
		{"/static/", "/static/", nil},
	} {
		got, names := openAPIPath(tt.path)
		if got != tt.want || !cmp.Equal(names, tt.names) {
			t.Errorf("openAPIPath(%q) = %q %v, want %q %v", tt.path, got, names, tt.want, tt.names)
		}
	}
}
