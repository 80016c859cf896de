package supervisor

import "testing"

func TestSchemeOf(t *testing.T) {
	for _, c := range []struct {
		spec ServiceSpec
		want string
	}{
		{ServiceSpec{}, "http"},
		{ServiceSpec{Args: []string{"gateway"}}, "http"},
		{ServiceSpec{Args: []string{"gateway", "--tls-cert-file", "c.pem"}}, "https"},
		{ServiceSpec{Args: []string{"-tls-cert-file=c.pem"}}, "https"},
		{ServiceSpec{Args: []string{"tls-cert-file"}}, "http"}, // an argument, not a flag
		{ServiceSpec{Env: map[string]string{"SHOAL_TLS_CERT_FILE": "c.pem"}}, "https"},
		{ServiceSpec{Env: map[string]string{"SHOAL_TLS_CERT_FILE": ""}}, "http"},
	} {
		if got := schemeOf(&c.spec); got != c.want {
			t.Errorf("schemeOf(args %q, env %v) = %s, want %s", c.spec.Args, c.spec.Env, got, c.want)
		}
	}
}
