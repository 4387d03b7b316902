package daemon

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCgroupMemoryMax(t *testing.T) {
	for _, c := range []struct {
		name, cgroup, max string
		want              int64
		ok, fails         bool
	}{
		{"service with MemoryMax", "0::/system.slice/tekend.service\n", "536870912\n", 536870912, true, false},
		{"no cap", "0::/system.slice/tekend.service\n", "max\n", 0, false, false},
		{"cgroup v1 only", "12:memory:/system.slice/tekend.service\n", "", 0, false, false},
		{"garbage", "0::/x\n", "lots\n", 0, false, true},
		{"no memory controller file", "0::/elsewhere\n", "", 0, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			proc := filepath.Join(dir, "cgroup")
			if err := os.WriteFile(proc, []byte(c.cgroup), 0o644); err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(dir, "fs")
			if c.max != "" {
				group := filepath.Join(root, "system.slice", "tekend.service")
				if c.name == "garbage" {
					group = filepath.Join(root, "x")
				}
				if err := os.MkdirAll(group, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(group, "memory.max"), []byte(c.max), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, ok, err := cgroupMemoryMax(proc, root)
			if (err != nil) != c.fails || ok != c.ok || got != c.want {
				t.Fatalf("got %d %v %v, want %d %v fails=%v", got, ok, err, c.want, c.ok, c.fails)
			}
		})
	}
}
