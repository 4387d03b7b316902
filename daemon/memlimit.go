package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryShare is the part of the service's memory cap given to the Go
// heap as its soft limit: the rest is for what the Go runtime does not
// count (cgo's libpcsclite, thread stacks, page cache of the store file
// charged to the cgroup), so the collector works harder near the cap
// instead of the kernel killing tekend at it.
const memoryShare = 0.85

// applyMemoryLimit sets the Go runtime's soft memory limit from the cgroup
// memory cap systemd gives the unit (MemoryMax=, cgroup v2 memory.max),
// unless GOMEMLIMIT already set one. Without a cap it does nothing.
func applyMemoryLimit(log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	max, ok, err := cgroupMemoryMax("/proc/self/cgroup", "/sys/fs/cgroup")
	if err != nil {
		log.Warn("memory cap not read; no Go memory limit set", "err", err)
		return
	}
	if !ok {
		return
	}
	limit := int64(float64(max) * memoryShare)
	debug.SetMemoryLimit(limit)
	log.Info("Go memory limit set from the service's memory cap", "memory_max_bytes", max, "limit_bytes", limit)
}

// cgroupMemoryMax reads memory.max of this process's cgroup v2 group. It
// reports false when there is no cap ("max") or no cgroup v2 group.
func cgroupMemoryMax(procCgroup, root string) (int64, bool, error) {
	f, err := os.Open(procCgroup)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	var group string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// cgroup v2's single hierarchy is the line "0::/path" (cgroups(7)).
		if path, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			group = path
			break
		}
	}
	if err := sc.Err(); err != nil {
		return 0, false, err
	}
	if group == "" {
		return 0, false, nil
	}
	raw, err := os.ReadFile(filepath.Join(root, filepath.Clean("/"+group), "memory.max"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	v := strings.TrimSpace(string(raw))
	if v == "max" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, false, fmt.Errorf("memory.max %q: not a byte count", v)
	}
	return n, true, nil
}
