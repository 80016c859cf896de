package shoal

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// OpenAPIInfo is the info object of an OpenAPI document.
type OpenAPIInfo struct {
	Title       string `json:"title"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
}

// openAPIMethods are the operations a path item of OpenAPI 3 may hold.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Document returns the OpenAPI document the router serves at /openapi.json.
//
// Without Router.OpenAPI, the document is derived from the routes
// (OpenAPI 3.1): one operation per pattern that names a method, with its
// path parameters (the pattern's wildcards) and what Describe gave it, and
// the document's own GET /openapi.json. A pattern without a method serves
// every method, which an operation cannot say: it is left out.
//
// With Router.OpenAPI, the document is that one, checked against the
// routes: the error lists every route it does not describe and every
// operation no route serves (a GET route serves HEAD; GET /openapi.json
// may be described or not).
func (rt *Router) Document() ([]byte, error) {
	rt.mu.Lock()
	routes, docs := slices.Clone(rt.routes), make(map[string]routeDoc, len(rt.docs))
	for p, d := range rt.docs {
		docs[p] = d
	}
	rt.mu.Unlock()
	if rt.OpenAPI != nil {
		return rt.OpenAPI, checkDocument(rt.OpenAPI, routes)
	}
	return deriveDocument(rt.Info, routes, docs)
}

// serveDocument answers GET /openapi.json.
func (rt *Router) serveDocument(w http.ResponseWriter) {
	doc, err := rt.Document()
	if err != nil {
		WriteError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(doc)
}

// deriveDocument builds the OpenAPI 3.1 document of routes.
func deriveDocument(info OpenAPIInfo, routes []Route, docs map[string]routeDoc) ([]byte, error) {
	if info.Title == "" {
		info.Title = "API"
	}
	if info.Version == "" {
		info.Version = "0"
	}
	type param struct {
		Name     string            `json:"name"`
		In       string            `json:"in"`
		Required bool              `json:"required"`
		Schema   map[string]string `json:"schema"`
	}
	type operation struct {
		Summary     string         `json:"summary,omitempty"`
		Description string         `json:"description,omitempty"`
		Parameters  []param        `json:"parameters,omitempty"`
		Responses   map[string]any `json:"responses"`
	}
	responses := map[string]any{"default": map[string]string{
		"description": `JSON; an error is {"error": {"code": "...", "message": "..."}}`,
	}}
	paths := map[string]map[string]operation{}
	var errs []error
	for _, r := range routes {
		d, described := docs[r.Pattern]
		delete(docs, r.Pattern)
		if r.Method == "" {
			if described {
				errs = append(errs, fmt.Errorf("Describe(%q): a pattern without a method has no operation to describe", r.Pattern))
			}
			continue
		}
		path, names := openAPIPath(r.Path)
		op := operation{Summary: d.summary, Description: d.description, Responses: responses}
		for _, n := range names {
			op.Parameters = append(op.Parameters, param{Name: n, In: "path", Required: true, Schema: map[string]string{"type": "string"}})
		}
		if paths[path] == nil {
			paths[path] = map[string]operation{}
		}
		paths[path][strings.ToLower(r.Method)] = op
	}
	for p := range docs {
		errs = append(errs, fmt.Errorf("Describe(%q): no route has that pattern", p))
	}
	if !slices.ContainsFunc(routes, func(r Route) bool { return r.Path == PathOpenAPI }) {
		paths[PathOpenAPI] = map[string]operation{"get": {Summary: "This document", Responses: map[string]any{
			"200": map[string]string{"description": "OpenAPI 3.1"},
		}}}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("OpenAPI document: %w", err)
	}
	return json.Marshal(map[string]any{"openapi": "3.1.0", "info": info, "paths": paths})
}

// checkDocument compares a hand-written OpenAPI document with routes.
func checkDocument(doc []byte, routes []Route) error {
	var d struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return fmt.Errorf("OpenAPI document: %w", err)
	}
	var problems []string
	if !strings.HasPrefix(d.OpenAPI, "3.") {
		problems = append(problems, fmt.Sprintf(`"openapi" is %q; want 3.x`, d.OpenAPI))
	}
	served := map[string][]string{} // OpenAPI path → methods, lowercase; "" for any
	for _, r := range routes {
		path, _ := openAPIPath(r.Path)
		m := strings.ToLower(r.Method)
		served[path] = append(served[path], m)
		if m == "" {
			continue
		}
		if _, ok := d.Paths[path][m]; !ok {
			problems = append(problems, fmt.Sprintf("%s %s is served but not described", r.Method, path))
		}
	}
	if !slices.Contains(served[PathOpenAPI], "") {
		served[PathOpenAPI] = append(served[PathOpenAPI], "get")
	}
	for path, item := range d.Paths {
		for m := range item {
			if !slices.Contains(openAPIMethods, m) {
				continue // summary, parameters and the like
			}
			s := served[path]
			if !slices.Contains(s, m) && !slices.Contains(s, "") && (m != "head" || !slices.Contains(s, "get")) {
				problems = append(problems, fmt.Sprintf("%s %s is described but no route serves it", strings.ToUpper(m), path))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems)
	return fmt.Errorf("OpenAPI document does not match the routes: %s", strings.Join(problems, "; "))
}

// openAPIPath turns a pattern's path into an OpenAPI path template, and
// returns its wildcards' names: "/files/{path...}" is "/files/{path}", and
// "/{$}" is "/".
func openAPIPath(path string) (string, []string) {
	segs := strings.Split(path, "/")
	var names []string
	for i, s := range segs {
		if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
			continue
		}
		name := strings.TrimSuffix(s[1:len(s)-1], "...")
		if name == "$" {
			segs[i] = ""
			continue
		}
		segs[i] = "{" + name + "}"
		names = append(names, name)
	}
	return strings.Join(segs, "/"), names
}

// checkHandler refuses a Router handler whose OpenAPI document has a
// problem (a hand-written one that does not match the routes, a Describe of
// no route): a bug that every test of the service meets too.
func (s *Service) checkHandler() error {
	if rt, ok := s.handler.(*Router); ok {
		if _, err := rt.Document(); err != nil {
			return fmt.Errorf("shoal: %s: %w", PathOpenAPI, err)
		}
	}
	return nil
}
