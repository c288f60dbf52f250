// Package testfs gives tests small file systems of their own, to fill up on purpose.
package testfs

import (
	"os"
	"os/exec"
	"testing"
)

// MountTmpfs mounts a tmpfs of size (mount's syntax: "1m", "64k") on dir for the rest of the
// test, and unmounts it in the test's cleanup. It skips the test when it is not root or the
// mount fails (a container without CAP_SYS_ADMIN): a full disk cannot be made otherwise
// without filling the machine's own.
func MountTmpfs(t testing.TB, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a disk-full test needs root to mount a small tmpfs")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("mkdir %s: %v", dir, err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s): disk-full test skipped", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}
