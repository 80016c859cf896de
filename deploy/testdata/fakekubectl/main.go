// Command fakekubectl stands in for kubectl in deploy's tests of
// secrets.sh: it keeps Secrets as JSON files in the folder
// $FAKE_KUBECTL_STATE, logs every command there, and fails on anything
// secrets.sh should not ask for.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// fakeSecret is a Secret as it is kept.
type fakeSecret struct {
	Namespace string            `json:"namespace"`
	Type      string            `json:"type"`
	Data      map[string][]byte `json:"data"`
}

func main() {
	state := os.Getenv("FAKE_KUBECTL_STATE")
	if state == "" {
		fmt.Fprintln(os.Stderr, "fake kubectl: FAKE_KUBECTL_STATE is not set")
		os.Exit(2)
	}
	os.Exit(run(state, os.Args[1:]))
}

// run does what secrets.sh asks of kubectl: get secret NAME [-o
// jsonpath={.data.KEY}], create secret generic NAME --from-literal=K=V
// --from-file=K=PATH..., create secret tls NAME --cert=P --key=P, each with
// an optional --namespace. Anything else fails, so a script that asks for
// more is caught.
func run(state string, args []string) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "fake kubectl: "+format+"\n", a...)
		return 1
	}
	var ns string
	if len(args) >= 2 && args[0] == "--namespace" {
		ns, args = args[1], args[2:]
	}
	if len(args) < 3 || args[1] != "secret" {
		return fail("unsupported: %q", args)
	}
	file := filepath.Join(state, args[2]+".json")
	log, err := os.OpenFile(filepath.Join(state, "log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintln(log, strings.Join(args, " "))
	log.Close()
	switch {
	case args[0] == "get":
		raw, err := os.ReadFile(file)
		if err != nil {
			return fail("secrets %q not found", args[2])
		}
		var s fakeSecret
		if err := json.Unmarshal(raw, &s); err != nil || s.Namespace != ns {
			return fail("secret %q is in namespace %q, not %q", args[2], s.Namespace, ns)
		}
		if len(args) == 3 {
			return 0
		}
		key, ok := strings.CutPrefix(strings.Join(args[3:], " "), "-o jsonpath={.data.")
		key, ok2 := strings.CutSuffix(key, "}")
		v, have := s.Data[key]
		if !ok || !ok2 || !have {
			return fail("unsupported get: %q", args)
		}
		fmt.Print(base64.StdEncoding.EncodeToString(v))
		return 0
	case args[0] == "create" && len(args) >= 4:
		if _, err := os.Stat(file); err == nil {
			return fail("secrets %q already exists", args[3])
		}
		kind, name := args[2], args[3]
		file = filepath.Join(state, name+".json")
		s := fakeSecret{Namespace: ns, Type: "Opaque", Data: map[string][]byte{}}
		if kind == "tls" {
			s.Type = "kubernetes.io/tls"
		} else if kind != "generic" {
			return fail("unsupported secret type %q", kind)
		}
		for _, a := range args[4:] {
			flag, val, _ := strings.Cut(a, "=")
			switch {
			case kind == "generic" && flag == "--from-literal":
				k, v, _ := strings.Cut(val, "=")
				s.Data[k] = []byte(v)
			case kind == "generic" && flag == "--from-file", kind == "tls" && (flag == "--cert" || flag == "--key"):
				k, p, ok := strings.Cut(val, "=")
				if kind == "tls" {
					k, p, ok = map[string]string{"--cert": "tls.crt", "--key": "tls.key"}[flag], val, true
				}
				if !ok {
					return fail("--from-file without a key: %q", a)
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return fail("%v", err)
				}
				s.Data[k] = b
			default:
				return fail("unsupported flag %q", a)
			}
		}
		raw, _ := json.Marshal(s)
		if err := os.WriteFile(file, raw, 0o600); err != nil {
			return fail("%v", err)
		}
		return 0
	}
	return fail("unsupported: %q", args)
}
