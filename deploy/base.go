package deploy

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"strconv"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// baseLayer is the first layer of every image built from scratch, and the
// same in all of them (a registry stores it once): the non-root user, the
// CA certificates, name-service settings and the folders the programs use.
// There is no shell and no package manager: nothing to exec into, and
// nothing to patch but the service itself.
func baseLayer() *layerFiles {
	l := newLayer()
	uid := strconv.Itoa(UID)
	l.file("/etc/passwd", 0o644, []byte(
		"root:x:0:0:root:/root:/sbin/nologin\n"+
			userName+":x:"+uid+":"+uid+":"+userName+":/home/"+userName+":/sbin/nologin\n"))
	l.file("/etc/group", 0o644, []byte("root:x:0:\n"+userName+":x:"+uid+":\n"))
	// Go's resolver reads it for the order of /etc/hosts and DNS.
	l.file("/etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n"))
	l.file(CACertsFile, 0o644, caBundle())
	l.dir("/home/"+userName, 0o700, UID)
	l.dir("/root", 0o700, 0)
	l.dir(tmpDir, 0o1777, 0)
	l.dir(WorkDir, 0o755, 0)
	l.dir(BinDir, 0o755, 0)
	return l
}

// caBundle is the PEM file of the root certificates that Go's
// golang.org/x/crypto/x509roots/fallback carries (Mozilla's NSS roots).
// It comes from the module's version in go.mod, not from this machine, so
// every machine builds the same layer. Roots with a distrust-after date
// are left out: a PEM file cannot say that, and a TLS library reading it
// would trust them for good.
func caBundle() []byte {
	var b bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			panic(fmt.Sprintf("deploy: encode a root certificate: %v", err)) // writing to a bytes.Buffer cannot fail
		}
	}
	return b.Bytes()
}
