// Command schemagen writes the JSON Schema of shoal.yaml, generated from
// the structs of package manifest (their yaml tags, example tags and doc
// comments), so that editors complete and check the file. It runs from
// go generate in package manifest:
//
//	go generate ./manifest
//
// A test checks that the file in the repository is up to date.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/invopop/jsonschema"

	"github.com/shoal-dev/shoal/manifest"
)

func main() {
	out := flag.String("o", "shoal.schema.json", "`file` to write")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	b, err := generate()
	if err != nil {
		return err
	}
	return os.WriteFile(out, []byte(b), 0o644)
}

// module is the path of the module whose packages hold the documented types.
const module = "github.com/shoal-dev/shoal"

// schemaID names the schema; editors find it by the path or URL given in
// the yaml-language-server comment, not by this.
const schemaID = "https://github.com/shoal-dev/shoal/manifest/shoal.schema.json"

// Patterns of the strings the manifest reads. A duration is what
// time.ParseDuration takes (a bare number is refused: its unit would be a
// guess); a size is what manifest.ParseSize takes.
const (
	durationPattern = `^\s*[-+]?(0|([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+)\s*$`
	sizePattern     = `^\s*[0-9]+(\.[0-9]*)?\s*([kKmMgG][iI]?)?[bB]?\s*$`
	servicePattern  = `^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`
)

// Values the manifest's checks accept for its enumerations.
var enums = map[string]map[string][]any{
	"RateLimit": {"per": {manifest.PerClient, manifest.PerRoute}},
	"Route":     {"auth": {string(manifest.AuthNone), string(manifest.AuthJWT), string(manifest.AuthAPIKey), string(manifest.AuthAny)}},
	"Service":   {"register": {string(manifest.RegisterSDK), string(manifest.RegisterSupervisor)}},
}

// exampleTypes are the manifest's structs whose fields carry example tags.
var exampleTypes = []reflect.Type{
	reflect.TypeFor[manifest.Manifest](), reflect.TypeFor[manifest.Service](), reflect.TypeFor[manifest.Gateway](),
	reflect.TypeFor[manifest.Route](), reflect.TypeFor[manifest.Auth](), reflect.TypeFor[manifest.JWT](),
	reflect.TypeFor[manifest.APIKey](), reflect.TypeFor[manifest.RateLimit](), reflect.TypeFor[manifest.CORS](),
	reflect.TypeFor[manifest.Chaos](), reflect.TypeFor[manifest.Monkey](),
}

// generate returns the schema, indented, with a final newline.
func generate() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	r := &jsonschema.Reflector{
		FieldNameTag:               "yaml",
		RequiredFromJSONSchemaTags: true, // nothing is required by the schema alone
		Mapper:                     mapType,
		Namer:                      typeName,
	}
	// Doc comments become descriptions. The comment reader names packages
	// by their folder relative to the working directory.
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(root, wd)
	if err != nil {
		return "", err
	}
	for _, pkg := range []string{"manifest", "client", "resilience", "balance"} {
		dir, err := filepath.Rel(wd, filepath.Join(root, pkg))
		if err != nil {
			return "", err
		}
		if err := r.AddGoComments(path.Join(module, filepath.ToSlash(rel)), filepath.ToSlash(dir)); err != nil {
			return "", err
		}
	}
	for k, v := range r.CommentMap {
		r.CommentMap[k] = unwrap(v)
	}
	s := r.ReflectFromType(reflect.TypeFor[manifest.Manifest]())
	// Services is a mapping from name to Service (see mapType): reflect
	// Service on its own and keep its definitions.
	for name, def := range r.ReflectFromType(reflect.TypeFor[manifest.Service]()).Definitions {
		s.Definitions[name] = def
	}
	s.ID = schemaID
	s.Title = "shoal.yaml"
	for _, t := range exampleTypes {
		if err := annotate(s.Definitions[t.Name()], t); err != nil {
			return "", err
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return "", err
	}
	// The schema's own marshaller escapes <, > and & for HTML, which no
	// reader of this file needs.
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(b.String()), nil
}

// unwrap joins the lines of each paragraph of a doc comment: editors wrap
// descriptions themselves.
func unwrap(doc string) string {
	paras := strings.Split(doc, "\n\n")
	for i, p := range paras {
		paras[i] = strings.Join(strings.Fields(p), " ")
	}
	return strings.Join(paras, "\n\n")
}

// annotate adds each field's example and allowed values to def, t's
// definition.
func annotate(def *jsonschema.Schema, t reflect.Type) error {
	if def == nil || def.Properties == nil {
		return fmt.Errorf("no definition of %s", t.Name())
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		prop, ok := def.Properties.Get(name)
		if !ok {
			continue
		}
		if eg := f.Tag.Get("example"); eg != "" {
			var v any
			if err := yaml.Unmarshal([]byte(eg), &v); err != nil {
				return fmt.Errorf("%s.%s: example %q: %w", t.Name(), f.Name, eg, err)
			}
			prop.Examples = []any{v}
		}
		if vals := enums[t.Name()][name]; vals != nil {
			prop.Enum = vals
		}
	}
	return nil
}

// mapType gives the schema of the types whose YAML form is not their Go
// form, nil for the others.
func mapType(t reflect.Type) *jsonschema.Schema {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return &jsonschema.Schema{Type: "string", Pattern: durationPattern,
			Description: "A duration: a number with a unit (ns, us, ms, s, m, h), e.g. 300ms, 10s, 1m30s."}
	case reflect.TypeFor[manifest.Size]():
		return &jsonschema.Schema{
			Description: "A number of bytes, or a number with a unit: B, KB, MB, GB (powers of 1000), KiB, MiB, GiB (powers of 1024), e.g. 10MB.",
			OneOf: []*jsonschema.Schema{
				{Type: "integer", Minimum: "0"},
				{Type: "string", Pattern: sizePattern},
			}}
	case reflect.TypeFor[manifest.Ports]():
		port := func() *jsonschema.Schema { return &jsonschema.Schema{Type: "integer", Minimum: "1", Maximum: "65535"} }
		return &jsonschema.Schema{OneOf: []*jsonschema.Schema{
			{Type: "array", Items: port()},
			port(),
		}}
	case reflect.TypeFor[manifest.Services]():
		return &jsonschema.Schema{
			Type:                 "object",
			PropertyNames:        &jsonschema.Schema{Pattern: servicePattern},
			AdditionalProperties: &jsonschema.Schema{Ref: "#/$defs/Service"},
		}
	case reflect.TypeFor[[]string]():
		// Items are taken as written: args: [--port, 8080].
		return &jsonschema.Schema{Type: "array", Items: scalar()}
	case reflect.TypeFor[map[string]string]():
		return &jsonschema.Schema{Type: "object", AdditionalProperties: scalar()}
	}
	return nil
}

// scalar accepts any YAML scalar but null.
func scalar() *jsonschema.Schema {
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{{Type: "string"}, {Type: "number"}, {Type: "boolean"}}}
}

// typeName names definitions: the manifest's types by their names, the
// others qualified by their package (client.Config, balance.Config).
func typeName(t reflect.Type) string {
	if t.PkgPath() == module+"/manifest" || t.PkgPath() == "" {
		return ""
	}
	return path.Base(t.PkgPath()) + "." + t.Name()
}

// moduleRoot finds the folder of the module's go.mod from the working
// directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module "+module+"\n")) {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("not inside module " + module)
		}
		dir = up
	}
}
