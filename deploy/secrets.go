package deploy

import (
	"fmt"
	"slices"
	"strings"
)

// identityDays is how long secrets.sh's service certificates are valid.
// The identity work issues 24-hour certificates and renews them under
// shoal up; on Kubernetes nothing renews them yet, so they last a season
// and are replaced by running secrets.sh again after deleting them.
const (
	identityDays = 90
	caDays       = 365
)

// secretsScript is secrets.sh: a POSIX shell script that creates, with
// kubectl, every Secret the objects reference that does not exist yet.
// Keys are generated on the spot (openssl) and go straight into the
// cluster: no key is ever written into the objects or this folder.
func (k *kube) secretsScript() []byte {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("#!/bin/sh")
	p("# Creates the Secrets that the objects beside this script reference, each")
	p("# one only if it does not exist yet: run it again after adding a service.")
	p("# Written by shoal export kubernetes; needs kubectl (pointing at the")
	p("# cluster) and openssl. Run it from the folder of %s:", k.manifest)
	p("#")
	p("#   sh DIR/%s", secretsFile)
	p("#")
	p("# Keys are generated here and sent to the cluster; nothing secret stays on")
	p("# disk but a temporary folder, removed at the end.")
	p("set -eu")
	if k.opts.Namespace != "" {
		p("k() { kubectl --namespace %s \"$@\"; }", shellQuote(k.opts.Namespace))
	} else {
		p("k() { kubectl \"$@\"; }")
	}
	p("have() { k get secret \"$1\" >/dev/null 2>&1; }")
	p("field() { k get secret \"$1\" -o \"jsonpath={.data.$2}\" | openssl base64 -d -A; }")
	p("tmp=$(mktemp -d)")
	p("trap 'rm -rf \"$tmp\"' EXIT")

	var files []string
	for _, fs := range k.files {
		for _, f := range fs {
			if !slices.Contains(files, f) {
				files = append(files, f)
			}
		}
	}
	slices.Sort(files)
	if len(files) > 0 {
		quoted := make([]string, len(files))
		for i, f := range files {
			quoted[i] = shellQuote(f)
		}
		p("for f in %s; do", strings.Join(quoted, " "))
		p("  [ -f \"$f\" ] || { echo \"%s: $f not found: run this script from the folder of %s\" >&2; exit 1; }", secretsFile, k.manifest)
		p("done")
	}

	p("")
	p("# %s (%s): the gossip keyring, one AES-256 key. Rotation: docs/DEPLOY.md.", k.name(secretGossip), envGossipKey)
	p("have %s || k create secret generic %[1]s --from-literal=%s=\"$(openssl rand -base64 32)\"", k.name(secretGossip), keyGossip)

	if len(files) > 0 {
		p("")
		p("# %s: the files %s names, mounted at their paths under %s.", k.name(secretFiles), k.manifest, WorkDir)
		p("have %s || k create secret generic %[1]s \\", k.name(secretFiles))
		for i, f := range files {
			end := " \\"
			if i == len(files)-1 {
				end = ""
			}
			p("  --from-file=%s%s", shellQuote(k.fileKeys[f]+"="+f), end)
		}
	}

	var stores []string
	for _, s := range k.m.Services {
		if s.Store {
			stores = append(stores, s.Name)
		}
	}
	if len(stores) > 0 {
		p("")
		p("# %s (%s) of %s: the PostgreSQL database of the services with a store,", k.name(secretDatabase), envDatabaseURL, strings.Join(stores, ", "))
		p("# each in its own schema.")
		if k.opts.DevPostgres {
			p("have %s || k create secret generic %[1]s --from-literal=%s=\"$(openssl rand -hex 24)\"", k.name(secretPostgres), keyPassword)
			p("if ! have %s; then", k.name(secretDatabase))
			p("  password=$(field %s %s)", k.name(secretPostgres), keyPassword)
			p("  k create secret generic %s --from-literal=%s=\"%s\"", k.name(secretDatabase), keyDatabaseURL, k.devDatabaseURL("password"))
			p("fi")
		} else {
			p("if ! have %s; then", k.name(secretDatabase))
			p("  : \"${DATABASE_URL:?set DATABASE_URL to the services' PostgreSQL database, e.g. postgres://USER:PASSWORD@HOST:5432/%s, or export with --dev-postgres}\"", k.system)
			p("  k create secret generic %s --from-literal=%s=\"$DATABASE_URL\"", k.name(secretDatabase), keyDatabaseURL)
			p("fi")
		}
	}

	caKey := k.name(secretCA + "-key")
	domain := "spiffe://" + k.system
	p("")
	p("# %s (%s): the CA bundle every service verifies the others with;", k.name(secretCA), envIdentityBundle)
	p("# %sSERVICE (%s, %s): the service's certificate,", k.name(secretIdentity), envIdentityCert, envIdentityKey)
	p("# %s/SERVICE, valid %d days. The CA's key stays in %s, which", domain, identityDays, caKey)
	p("# no pod mounts, to issue the certificates of services added later.")
	p("if ! have %s; then", caKey)
	p("  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days %d \\", caDays)
	p("    -subj %s -addext basicConstraints=critical,CA:TRUE \\", shellQuote("/O="+k.system+"/CN="+k.system+" CA"))
	p("    -addext keyUsage=critical,keyCertSign,cRLSign -addext subjectAltName=URI:%s \\", domain)
	p("    -keyout \"$tmp/ca.key\" -out \"$tmp/ca.pem\" 2>/dev/null")
	p("  k create secret generic %s --from-file=key=\"$tmp/ca.key\" --from-file=cert=\"$tmp/ca.pem\"", caKey)
	p("fi")
	p("if ! have %s; then", k.name(secretCA))
	p("  field %s cert > \"$tmp/bundle.pem\"", caKey)
	p("  k create secret generic %s --from-file=%s=\"$tmp/bundle.pem\"", k.name(secretCA), keyCA)
	p("fi")
	p("issue() {")
	p("  have \"%s$1\" && return 0", k.name(secretIdentity))
	p("  [ -f \"$tmp/ca.key\" ] || { field %s key > \"$tmp/ca.key\"; field %[1]s cert > \"$tmp/ca.pem\"; }", caKey)
	p("  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj \"/O=%s/CN=$1\" \\", k.system)
	p("    -keyout \"$tmp/$1.key\" -out \"$tmp/$1.csr\" 2>/dev/null")
	p("  printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\nextendedKeyUsage=serverAuth,clientAuth\\nsubjectAltName=DNS:%%s,URI:%s/%%s\\n' \"$1\" \"$1\" > \"$tmp/$1.ext\"", domain)
	p("  openssl x509 -req -in \"$tmp/$1.csr\" -CA \"$tmp/ca.pem\" -CAkey \"$tmp/ca.key\" -set_serial \"0x$(openssl rand -hex 16)\" \\")
	p("    -days %d -extfile \"$tmp/$1.ext\" -out \"$tmp/$1.pem\" 2>/dev/null", identityDays)
	p("  k create secret tls \"%s$1\" --cert=\"$tmp/$1.pem\" --key=\"$tmp/$1.key\"", k.name(secretIdentity))
	p("}")
	for _, s := range k.m.Services {
		p("issue %s", s.Name)
	}
	return []byte(b.String())
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
