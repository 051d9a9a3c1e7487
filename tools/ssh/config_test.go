package sshexec

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestNewValidation(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	plain, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	keyPath := write("id_ed25519", pem.EncodeToMemory(plain))
	encPath := write("id_encrypted", pem.EncodeToMemory(encrypted))
	junkPath := write("junk", []byte("not a key"))
	knownHosts := write("known_hosts", []byte("[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"))
	badKnownHosts := write("bad_known_hosts", []byte("[127.0.0.1]:2222 ssh-ed25519 !!!notbase64\n"))
	good := Config{Nodes: map[string]string{"pve": "127.0.0.1:2222"}, KeyPath: keyPath, KnownHostsPath: knownHosts}

	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; none means valid
	}{
		{"valid", func(*Config) {}, nil},
		{"everything missing", func(c *Config) { *c = Config{} }, []string{"no nodes configured", "no client key", "KnownHostsPath is empty"}},
		{"bad node name and address", func(c *Config) {
			c.Nodes = map[string]string{"bad name": "127.0.0.1:22", "ok": "nohostport", "p": "h:99999"}
		},
			[]string{`node name "bad name" is invalid`, `"nohostport" is not host:port`, `port "99999"`}},
		{"negative limits", func(c *Config) { c.MaxSessions, c.DialTimeout, c.OutputCap = -1, -time.Second, -5 },
			[]string{"MaxSessions is -1", "DialTimeout is -1s", "OutputCap is -5"}},
		{"both key forms", func(c *Config) { c.Signer = newSigner(t) }, []string{"both KeyPath and Signer"}},
		{"missing key file", func(c *Config) { c.KeyPath = filepath.Join(dir, "nope") }, []string{"reading SSH private key"}},
		{"encrypted key", func(c *Config) { c.KeyPath = encPath }, []string{"passphrase-protected"}},
		{"junk key", func(c *Config) { c.KeyPath = junkPath }, []string{"could not be parsed"}},
		{"missing known_hosts", func(c *Config) { c.KnownHostsPath = filepath.Join(dir, "nope") }, []string{"reading known_hosts"}},
		{"malformed known_hosts", func(c *Config) { c.KnownHostsPath = badKnownHosts }, []string{"reading known_hosts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			cfg.Nodes = map[string]string{"pve": "127.0.0.1:2222"}
			tt.edit(&cfg)
			e, err := New(cfg)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if e.cfg.cfg.User != "root" || cap(e.nodes["pve"].slots) != DefaultMaxSessions || e.cfg.cfg.OutputCap != DefaultOutputCap || e.cfg.cfg.DialTimeout != DefaultDialTimeout {
					t.Errorf("defaults not applied: %+v", e.cfg.cfg)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted an invalid config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error leaks key material: %q", err)
			}
		})
	}
}

func TestPinnedHostKeyAlgorithms(t *testing.T) {
	dir := t.TempDir()
	edKey, _ := ssh.NewPublicKey(mustEd25519(t))
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPub, _ := ssh.NewPublicKey(&ecKey.PublicKey)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, _ := ssh.NewPublicKey(&rsaKey.PublicKey)
	line := func(host string, k ssh.PublicKey) string { return host + " " + string(ssh.MarshalAuthorizedKey(k)) }
	kh := filepath.Join(dir, "kh")
	content := line("[127.0.0.1]:2222", edKey) + line("10.0.0.5", edKey) + line("10.0.0.7", rsaPub) + line("10.0.0.7", ecPub)
	if err := os.WriteFile(kh, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := load(Config{Nodes: map[string]string{"a": "127.0.0.1:2222"}, Signer: newSigner(t), KnownHostsPath: kh})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want string
	}{
		{"127.0.0.1:2222", "ssh-ed25519"},
		{"10.0.0.5:22", "ssh-ed25519"},
		{"127.0.0.1:22", ""},
		{"10.0.0.6:22", ""},
		{"10.0.0.7:22", "rsa-sha2-512,rsa-sha2-256,ssh-rsa,ecdsa-sha2-nistp256"},
	}
	for _, tt := range tests {
		algos, err := pinnedHostKeyAlgorithms(cfg.hostKeys, tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(algos, ","); got != tt.want {
			t.Errorf("%s: algorithms %q, want %q", tt.addr, got, tt.want)
		}
	}
}
