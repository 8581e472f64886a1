package chunkserver

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	base := DefaultConfig()
	base.Dir = "/tmp/x"
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults with Dir: %v", err)
	}
	cases := map[string]func(*Config){
		"no dir":              func(c *Config) { c.Dir = "" },
		"bad listen":          func(c *Config) { c.Listen = "nonsense" },
		"listen port":         func(c *Config) { c.Listen = "127.0.0.1:99999" },
		"advertise no host":   func(c *Config) { c.Advertise = ":9410" },
		"advertise port 0":    func(c *Config) { c.Advertise = "h:0" },
		"bad id":              func(c *Config) { c.ID = "has space" },
		"long id":             func(c *Config) { c.ID = strings.Repeat("a", 65) },
		"group 0":             func(c *Config) { c.Group = 0 },
		"bad meta":            func(c *Config) { c.Meta = "meta" },
		"meta without period": func(c *Config) { c.Meta = "m:1"; c.HeartbeatEvery = 0 },
		"secret with space":   func(c *Config) { c.Secret = "a b" },
		"secret with newline": func(c *Config) { c.Secret = "a\r\nX-Evil: 1" },
		"binlog keep":         func(c *Config) { c.BinlogKeep = 0 },
	}
	for name, mutate := range cases {
		c := base
		mutate(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err %v, want ErrConfig", name, err)
		}
		if _, err := New(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: New err %v, want ErrConfig", name, err)
		}
	}
	ok := map[string]func(*Config){
		"listen any":    func(c *Config) { c.Listen = ":0" },
		"ipv6":          func(c *Config) { c.Listen = "[::1]:0"; c.Advertise = "[::1]:9410" },
		"meta":          func(c *Config) { c.Meta = "meta.example:9400" },
		"id":            func(c *Config) { c.ID = "chunk-1.rack_2" },
		"zero reserve":  func(c *Config) { c.Reserve = 0 },
		"secret":        func(c *Config) { c.Secret = "Zm9v!bar~" },
		"no heartbeats": func(c *Config) { c.HeartbeatEvery = 0 },
	}
	for name, mutate := range ok {
		c := base
		mutate(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
