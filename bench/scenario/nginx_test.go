package main

import (
	"os"
	"strings"
	"testing"
)

// TestRenderNginx renders the checked-in peer config and checks what the
// measurement rules require of it.
func TestRenderNginx(t *testing.T) {
	text, err := os.ReadFile("../peers/nginx-scenario.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf, err := renderNginx(string(text), nginxConf{Prefix: "/tmp/p", Listen: "127.0.0.1:4242",
		Upstreams: []string{"127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(conf)
	for _, want := range []string{
		"listen 127.0.0.1:4242;",
		"server 127.0.0.1:1001;", "server 127.0.0.1:1002;", "server 127.0.0.1:1003;",
		"keepalive 64;", "proxy_http_version 1.1;", `proxy_set_header Connection "";`, "access_log off;",
		"pid /tmp/p/nginx.pid;", "error_log /tmp/p/error.log",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("rendered config lacks %q:\n%s", want, s)
		}
	}
	var directives []string // the config without its comments
	for line := range strings.SplitSeq(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			directives = append(directives, line)
		}
	}
	for _, bad := range []string{"{{", "proxy_next_upstream", "daemon"} {
		if strings.Contains(strings.Join(directives, "\n"), bad) {
			t.Errorf("rendered config has %q (template left over, or a non-default the peer must not have)", bad)
		}
	}
}

func TestRenderNginxBadTemplate(t *testing.T) {
	if _, err := renderNginx("listen {{.Nope}};", nginxConf{}); err == nil {
		t.Error("a template naming an unknown field rendered")
	}
}
