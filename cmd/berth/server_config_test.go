package main

import (
	"strings"
	"testing"
	"time"
)

func TestServerConfig(t *testing.T) {
	load := func(body string) (Configuration, error) {
		c := defaultConfiguration()
		err := loadConfigFile(writeConfig(t, body), &c)
		return c, err
	}
	c, err := load("kind: KubeletConfiguration\n")
	if err != nil {
		t.Fatal(err)
	}
	sc := serverConfig(&c)
	if sc.Address != "0.0.0.0" || sc.Port != 10250 || sc.HealthzAddress != "127.0.0.1" || sc.HealthzPort != 10248 ||
		!sc.WebhookAuthentication || sc.Anonymous || sc.AuthorizationMode != "Webhook" || sc.WebhookCacheTTL != 2*time.Minute ||
		sc.CacheAuthorizedTTL != 5*time.Minute || sc.CacheUnauthorizedTTL != 30*time.Second || !sc.EnableProfiling {
		t.Errorf("defaults: %+v", sc)
	}
	c, err = load("port: 10260\nhealthzPort: 0\nreadOnlyPort: 0\nenableProfilingHandler: false\ntlsCertFile: /a.crt\ntlsPrivateKeyFile: /a.key\n" +
		"authentication:\n  x509:\n    clientCAFile: /ca.crt\n  anonymous:\n    enabled: true\nauthorization:\n  mode: AlwaysAllow\n")
	if err != nil {
		t.Fatal(err)
	}
	sc = serverConfig(&c)
	if sc.Port != 10260 || sc.HealthzPort != 0 || sc.ClientCAFile != "/ca.crt" || !sc.Anonymous || !sc.WebhookAuthentication ||
		sc.AuthorizationMode != "AlwaysAllow" || sc.TLSCertFile != "/a.crt" || sc.CacheAuthorizedTTL != 5*time.Minute ||
		sc.EnableProfiling {
		t.Errorf("overlay: %+v", sc)
	}
	for body, want := range map[string]string{
		"authentication:\n  x509:\n    clientCAFiles: /x\n": `unknown field "clientCAFiles"`,
		"authorization:\n  mode: RBAC\n":                    "authorization.mode",
		"port: 70000\n":                                     "port",
		"tlsCertFile: /a.crt\n":                             "go together",
		"address: nowhere\n":                                "address",
		"readOnlyPort: 10255\n":                             "readOnlyPort",
	} {
		if _, err := load(body); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", body, err, want)
		}
	}
}
