package agent

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// topology is two network namespaces joined by a veth pair: "api" plays an API server host (the
// agent's iptables run there) and "cc" a cloudcore host. Edge node IPs exist nowhere: only the
// DNAT rules make connections to them land on cloudcore.
type topology struct {
	api, cc     string
	apiIP, ccIP string
	// backend is nft or legacy: the iptables flavour the test itself uses.
	backend string
}

func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces and run iptables (run the tests as root, e.g. in CI's container)")
	}
	for _, bin := range []string{"ip", "iptables", "iptables-nft-save", "iptables-nft-restore"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("skipping: %s not installed (apt-get install -y iptables iproute2)", bin)
		}
	}
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	require.NoError(t, err, "%s: %s", strings.Join(args, " "), out)
	return string(out)
}

// newTopology creates the namespaces; t.Cleanup deletes them (and with them the veths and
// every rule inside) even when the test fails.
func newTopology(t *testing.T, subnet int, backend string) topology {
	t.Helper()
	requireNetns(t)
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, subnet)
	tp := topology{api: "etob-api-" + id, cc: "etob-cc-" + id,
		apiIP: fmt.Sprintf("10.199.%d.1", subnet), ccIP: fmt.Sprintf("10.199.%d.2", subnet), backend: backend}
	if _, err := exec.LookPath("iptables-" + backend + "-restore"); err != nil {
		t.Skipf("skipping: iptables-%s-restore not installed", backend)
	}
	sh(t, "ip", "netns", "add", tp.api)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", tp.api).Run() })
	sh(t, "ip", "netns", "add", tp.cc)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", tp.cc).Run() })
	va, vc := "eta"+id, "etc"+id
	sh(t, "ip", "link", "add", va, "netns", tp.api, "type", "veth", "peer", "name", vc, "netns", tp.cc)
	sh(t, "ip", "-n", tp.api, "addr", "add", tp.apiIP+"/24", "dev", va)
	sh(t, "ip", "-n", tp.cc, "addr", "add", tp.ccIP+"/24", "dev", vc)
	for _, l := range [][2]string{{tp.api, va}, {tp.cc, vc}, {tp.api, "lo"}, {tp.cc, "lo"}} {
		sh(t, "ip", "-n", l[0], "link", "set", l[1], "up")
	}
	// Edge IPs need a route for the kernel to even try; DNAT in OUTPUT then rewrites them.
	sh(t, "ip", "-n", tp.api, "route", "add", "default", "via", tp.ccIP)
	return tp
}

// inNetns runs fn on a thread switched into the named namespace. Sockets created there stay
// in it. The thread is only returned to the runtime once it is back in its own namespace.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + name)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns back: %w", err) // thread stays locked and exits with us
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// cloudcore listens in the cc namespace and greets every connection with "cloudcore <port>".
func (tp topology) cloudcore(t *testing.T, port int) {
	t.Helper()
	var ln net.Listener
	require.NoError(t, inNetns(tp.cc, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(tp.ccIP, fmt.Sprint(port)))
		return err
	}))
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "cloudcore %d\n", port)
			c.Close()
		}
	}()
}

// dial connects from the api namespace and returns the greeting.
func (tp topology) dial(addr string) (string, error) {
	var conn net.Conn
	if err := inNetns(tp.api, func() (err error) {
		conn, err = net.DialTimeout("tcp", addr, 2*time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// ipt runs an iptables program of the topology's backend in the api namespace
// ("iptables-save" becomes "iptables-nft-save" or "iptables-legacy-save").
func (tp topology) ipt(t *testing.T, args ...string) string {
	t.Helper()
	if rest, ok := strings.CutPrefix(args[0], "iptables"); ok && tp.backend != "" {
		args = append([]string{"iptables-" + tp.backend + rest}, args[1:]...)
	}
	return sh(t, append([]string{"ip", "netns", "exec", tp.api}, args...)...)
}
