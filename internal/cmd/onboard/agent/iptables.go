// Package agent applies the desired DNAT rules of an IPTablesRules object on the host it runs on,
// in a nat chain of its own, with iptables-restore so each change is atomic.
package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
)

// Runner runs a program; Prefix lets tests run it inside a network namespace
// (ip netns exec <ns>).
type Runner struct {
	Prefix []string
}

func (r Runner) run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string(nil), r.Prefix...), name), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// IPTables is one iptables backend: the save and restore programs of nft or legacy.
type IPTables struct {
	Mode    string
	Save    string
	Restore string
	Runner  Runner
}

// Detect picks the backend the host already uses, as kubernetes-sigs/iptables-wrappers does:
// the one holding more rules, nft on a tie. mode "nft" or "legacy" forces one.
func Detect(ctx context.Context, r Runner, mode string) (IPTables, error) {
	nft := IPTables{Mode: "nft", Save: "iptables-nft-save", Restore: "iptables-nft-restore", Runner: r}
	legacy := IPTables{Mode: "legacy", Save: "iptables-legacy-save", Restore: "iptables-legacy-restore", Runner: r}
	switch mode {
	case "nft":
		return nft, nft.usable(ctx)
	case "legacy":
		return legacy, legacy.usable(ctx)
	case "", "auto":
	default:
		return IPTables{}, fmt.Errorf("iptables mode %q: want auto, nft or legacy", mode)
	}
	nftRules, nftErr := nft.countRules(ctx)
	legacyRules, legacyErr := legacy.countRules(ctx)
	switch {
	case nftErr != nil && legacyErr != nil:
		return IPTables{}, fmt.Errorf("neither iptables backend works: %w", errors.Join(nftErr, legacyErr))
	case nftErr != nil:
		return legacy, nil
	case legacyErr != nil || nftRules >= legacyRules:
		return nft, nil
	default:
		return legacy, nil
	}
}

func (t IPTables) usable(ctx context.Context) error {
	_, err := t.countRules(ctx)
	return err
}

func (t IPTables) countRules(ctx context.Context) (int, error) {
	out, err := t.Runner.run(ctx, nil, t.Save)
	if err != nil {
		return 0, err
	}
	return bytes.Count(out, []byte("\n-A ")), nil
}

// SaveNAT returns iptables-save's nat table.
func (t IPTables) SaveNAT(ctx context.Context) (string, error) {
	out, err := t.Runner.run(ctx, nil, t.Save, "-t", "nat")
	return string(out), err
}

// RestoreNoFlush applies input atomically, leaving every chain it does not name alone. -w waits
// for the xtables lock (kube-proxy and CNIs hold it while they write) instead of failing; ctx
// bounds the wait.
func (t IPTables) RestoreNoFlush(ctx context.Context, input string) error {
	_, err := t.Runner.run(ctx, []byte(input), t.Restore, "-w", "--noflush")
	return err
}

// JumpComment marks our jump rules in OUTPUT and PREROUTING.
const JumpComment = "edgetel-onboard: DNAT to cloudcore"

// hooks are the built-in nat chains that jump to ours: OUTPUT for connections the host makes
// (kube-apiserver with host networking), PREROUTING for those routed through it (pods).
var hooks = []string{"OUTPUT", "PREROUTING"}

// jumpLine is the jump exactly as iptables-save prints it.
func jumpLine(hook, chain string) string {
	return fmt.Sprintf("-A %s -m comment --comment %q -j %s", hook, JumpComment, chain)
}

// RuleLine renders one rule exactly as iptables-save prints it, so drift is a string compare.
// Rules that are not DNAT to an IPv4 address in our chain are refused: the agent never writes
// anywhere else.
func RuleLine(chain string, r apis.Rule) (string, error) {
	if r.Table != "nat" || r.Chain != chain || r.Jump != "DNAT" || !strings.EqualFold(r.Protocol, "tcp") {
		return "", fmt.Errorf("rule %+v: only table nat, chain %s, jump DNAT, protocol tcp are applied", r, chain)
	}
	dport, err := port(r.SourcePort)
	if err != nil {
		return "", fmt.Errorf("rule source_port: %w", err)
	}
	toPort, err := port(r.DestinationPort)
	if err != nil {
		return "", fmt.Errorf("rule destination_port: %w", err)
	}
	to, err := netip.ParseAddr(r.DestinationIP)
	if err != nil || !to.Is4() {
		return "", fmt.Errorf("rule destination_ip %q: want an IPv4 address", r.DestinationIP)
	}
	match := ""
	if r.SourceIP != "" {
		src, err := netip.ParseAddr(r.SourceIP)
		if err != nil || !src.Is4() {
			return "", fmt.Errorf("rule source_ip %q: want an IPv4 address", r.SourceIP)
		}
		match = "-d " + src.String() + "/32 "
	}
	return fmt.Sprintf("-A %s %s-p tcp -m tcp --dport %d -j DNAT --to-destination %s:%d", chain, match, dport, to, toPort), nil
}

func port(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("%q is not a port", s)
	}
	return p, nil
}

var (
	chainRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,28}$`)
	// ourRuleRE is every rule RuleLine prints, and the match-less form earlier agents wrote:
	// anything else in the chain is not ours.
	ourRuleRE = regexp.MustCompile(`^-A (\S+) (-d [0-9.]+/32 )?-p tcp -m tcp --dport [0-9]+ -j DNAT --to-destination [0-9.]+:[0-9]+$`)
)

// validChain refuses names iptables-restore would misread and chains that belong to the
// kernel, kube-proxy or KubeEdge's own iptables manager.
func validChain(chain string) error {
	if !chainRE.MatchString(chain) {
		return fmt.Errorf("agent: chain name %q: want 1-28 letters, digits, _ or -", chain)
	}
	switch {
	case slices.Contains([]string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING", "TUNNEL-PORT"}, strings.ToUpper(chain)),
		strings.HasPrefix(strings.ToUpper(chain), "KUBE-"):
		return fmt.Errorf("agent: chain %s belongs to the kernel, kube-proxy or KubeEdge: choose a chain of the agent's own", chain)
	}
	return nil
}

// Claim refuses to run on a chain that exists and is not the agent's: the agent flushes and
// (on uninstall) deletes its chain, which would destroy someone else's rules. A chain is the
// agent's when every rule in it is one RuleLine prints and every jump to it is the agent's own.
func (a *Agent) Claim(ctx context.Context) error {
	save, err := a.cfg.IPTables.SaveNAT(ctx)
	if err != nil {
		return err
	}
	o := parseSave(save, a.cfg.Chain)
	for _, r := range o.rules {
		if !ourRuleRE.MatchString(r) {
			return fmt.Errorf("agent: nat chain %s exists and is not ours (it holds %q): choose another -chain", a.cfg.Chain, r)
		}
	}
	for h, jumps := range o.jumps {
		for _, j := range jumps {
			if !slices.Contains(hooks, h) || j != jumpLine(h, a.cfg.Chain) {
				return fmt.Errorf("agent: nat chain %s exists and is not ours (%q jumps to it): choose another -chain", a.cfg.Chain, j)
			}
		}
	}
	return nil
}

// observed is what iptables-save shows of ours.
type observed struct {
	chainExists bool
	rules       []string
	// jumps holds every rule in a hook chain that targets our chain, as printed.
	jumps map[string][]string
}

func parseSave(save, chain string) observed {
	o := observed{jumps: map[string][]string{}}
	sc := bufio.NewScanner(strings.NewReader(save))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, ":"+chain+" "):
			o.chainExists = true
		case strings.HasPrefix(line, "-A "+chain+" "):
			o.rules = append(o.rules, line)
		case strings.HasSuffix(line, " -j "+chain):
			hook := strings.Fields(line)[1]
			o.jumps[hook] = append(o.jumps[hook], line)
		}
	}
	return o
}

// inSync reports whether o matches want exactly, in order, with one jump per hook.
func (o observed) inSync(chain string, want []string) bool {
	if !o.chainExists || len(o.rules) != len(want) {
		return false
	}
	for i := range want {
		if o.rules[i] != want[i] {
			return false
		}
	}
	for _, h := range hooks {
		if len(o.jumps[h]) != 1 || o.jumps[h][0] != jumpLine(h, chain) {
			return false
		}
	}
	return len(o.jumps) == len(hooks)
}

// restoreInput rewrites our chain and, where they are not exactly right, our jumps. Declaring
// the chain flushes it; nothing else is flushed.
func restoreInput(o observed, chain string, want []string) string {
	var b strings.Builder
	b.WriteString("*nat\n:" + chain + " - [0:0]\n")
	for _, line := range want {
		b.WriteString(line + "\n")
	}
	for _, h := range sortedHooks(o.jumps) {
		if len(o.jumps[h]) == 1 && o.jumps[h][0] == jumpLine(h, chain) {
			continue
		}
		for _, j := range o.jumps[h] {
			b.WriteString("-D " + strings.TrimPrefix(j, "-A ") + "\n")
		}
	}
	for _, h := range hooks {
		if len(o.jumps[h]) == 1 && o.jumps[h][0] == jumpLine(h, chain) {
			continue
		}
		b.WriteString(fmt.Sprintf("-I %s 1 -m comment --comment %q -j %s\n", h, JumpComment, chain))
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// cleanupInput removes our jumps and our chain.
func cleanupInput(o observed, chain string) string {
	var b strings.Builder
	b.WriteString("*nat\n:" + chain + " - [0:0]\n")
	for _, h := range sortedHooks(o.jumps) {
		for _, j := range o.jumps[h] {
			b.WriteString("-D " + strings.TrimPrefix(j, "-A ") + "\n")
		}
	}
	b.WriteString("-X " + chain + "\nCOMMIT\n")
	return b.String()
}

func sortedHooks(m map[string][]string) []string {
	var out []string
	for _, h := range []string{"INPUT", "OUTPUT", "POSTROUTING", "PREROUTING"} {
		if len(m[h]) > 0 {
			out = append(out, h)
		}
	}
	for h := range m {
		if h != "INPUT" && h != "OUTPUT" && h != "POSTROUTING" && h != "PREROUTING" {
			out = append(out, h)
		}
	}
	return out
}
