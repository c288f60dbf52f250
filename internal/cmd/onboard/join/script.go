package join

import (
	"fmt"
	"net"
	"strings"
)

// Arches are the architectures keadm is published for, with the uname -m names that map to them.
var Arches = map[string][]string{
	"amd64": {"x86_64", "amd64"},
	"arm64": {"aarch64", "arm64"},
	"arm":   {"armv7l", "armv7", "armv6l", "armhf", "arm"},
}

// Request is one validated join request.
type Request struct {
	NodeName string
	NodeIP   string
	// Arch pins the architecture; empty detects it on the node with uname -m.
	Arch  string
	Taint bool
}

// Quote makes s one shell word that expands to exactly s in sh, bash, dash and zsh.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// quoteTemplate quotes s, leaving each {arch} as a reference to the script's $arch variable.
func quoteTemplate(s string) string {
	parts := strings.Split(s, "{arch}")
	for i, p := range parts {
		parts[i] = Quote(p)
	}
	return strings.Join(parts, `"$arch"`)
}

func defaultMirror(s Settings) string {
	if s.Flavor == FlavorKubeSphere {
		if s.Region == "zh" {
			return "https://kubeedge.pek3b.qingstor.com/bin/{version}/{arch}/keadm-{version}-linux-{arch}.tar.gz"
		}
		return "https://github.com/kubesphere/kubeedge/releases/download/{version}-kubesphere/keadm-{version}-linux-{arch}.tar.gz"
	}
	return "https://github.com/kubeedge/kubeedge/releases/download/{version}/keadm-{version}-linux-{arch}.tar.gz"
}

// downloadURL is the mirror with {version} filled in; {arch} stays for the script.
func downloadURL(s Settings) string {
	m := s.Mirror
	if m == "" {
		m = defaultMirror(s)
	}
	if !strings.Contains(m, "{version}") && !strings.Contains(m, "{arch}") {
		m = strings.TrimSuffix(m, "/") + "/{version}/keadm-{version}-linux-{arch}.tar.gz"
	}
	return strings.ReplaceAll(m, "{version}", s.Version)
}

// keadmPath is where keadm lands after unpacking: upstream tarballs hold
// keadm-<ver>-linux-<arch>/keadm/keadm; KubeSphere's command ran ./keadm.
func keadmPath(s Settings) string {
	if s.Flavor == FlavorKubeSphere {
		return "./keadm"
	}
	return "./keadm-" + s.Version + "-linux-{arch}/keadm/keadm"
}

// archDetect maps uname -m to keadm's names, or pins req.Arch.
func archDetect(arch string) string {
	if arch != "" {
		return "arch=" + Quote(arch) + "; "
	}
	var b strings.Builder
	b.WriteString(`arch=$(uname -m); case "$arch" in `)
	for _, a := range []string{"amd64", "arm64", "arm"} {
		fmt.Fprintf(&b, "%s) arch=%s ;; ", strings.Join(Arches[a], "|"), a)
	}
	b.WriteString(`*) echo "keadm: unsupported architecture $arch" >&2; arch= ;; esac; `)
	return b.String()
}

// KeadmArgs is keadm's argument list after the program name, unquoted.
func KeadmArgs(s Settings, cc Cloudcore, token string, req Request) []string {
	ipport := net.JoinHostPort(cc.Address, itoa(cc.Websocket))
	var args []string
	if s.Flavor == FlavorKubeSphere {
		// edge-watcher's exact shape (docs/kubeedge.md §4), so KubeSphere's keadm fork accepts it.
		args = []string{"join", "--kubeedge-version=" + strings.TrimPrefix(s.Version, "v"), "--region=" + s.Region,
			"--cloudcore-ipport=" + ipport, "--quicport", itoa(cc.Quic), "--certport", itoa(cc.HTTPS),
			"--tunnelport", itoa(cc.TunnelPort), "--edgenode-name", req.NodeName, "--edgenode-ip", req.NodeIP,
			"--token", token}
		if req.Taint {
			args = append(args, "--with-edge-taint")
		}
	} else {
		// Upstream keadm has no IP, tunnel or taint flags: those go through --set (docs/kubeedge.md §6).
		set := []string{"modules.edgeStream.enable=true", "modules.edged.nodeIP=" + req.NodeIP}
		if req.Taint {
			set = append(set,
				"modules.edged.tailoredKubeletConfig.registerWithTaints[0].key=node-role.kubernetes.io/edge",
				"modules.edged.tailoredKubeletConfig.registerWithTaints[0].effect=NoSchedule")
		}
		args = []string{"join", "--kubeedge-version=" + s.Version, "--cloudcore-ipport=" + ipport,
			"--certport=" + itoa(cc.HTTPS), "--edgenode-name=" + req.NodeName, "--token=" + token,
			"--set=" + strings.Join(set, ",")}
	}
	if len(s.Labels) > 0 {
		kv := make([]string, 0, len(s.Labels))
		for _, k := range sortedKeys(s.Labels) {
			kv = append(kv, k+"="+s.Labels[k])
		}
		args = append(args, "--labels="+strings.Join(kv, ","))
	}
	return append(args, s.ExtraFlags...)
}

// checksum sets $sum, the SHA-512 the tarball must have: the operator's pinned one for $arch
// (Settings.KeadmSHA512), else the one KubeEdge publishes next to each release tarball
// (checksum_<tarball>.txt, which keadm itself checks edgecore's tarball against).
func checksum(s Settings) string {
	if len(s.KeadmSHA512) > 0 {
		var b strings.Builder
		b.WriteString(`case "$arch" in `)
		for _, a := range sortedKeys(s.KeadmSHA512) {
			fmt.Fprintf(&b, "%s) sum=%s ;; ", a, Quote(s.KeadmSHA512[a]))
		}
		b.WriteString(`*) sum= ;; esac && `)
		return b.String()
	}
	return `sumurl="${url%/*}/checksum_${url##*/}.txt" && ` +
		`sum=$({ curl -fsSL "$sumurl" || wget -qO- "$sumurl"; } | awk '{print $1; exit}') && `
}

// Script is the one-line command an operator pastes on the edge node. It never uses set -e,
// which would close an interactive shell; each step runs only if the previous one succeeded.
// Every value is single-quoted; $arch is the only expansion and is set by the script itself.
// keadm runs as root: it runs only from a tarball whose SHA-512 matched.
func Script(s Settings, cc Cloudcore, token string, req Request) string {
	keadm := quoteTemplate(keadmPath(s))
	quoted := make([]string, 0, 20)
	for _, a := range KeadmArgs(s, cc, token, req) {
		quoted = append(quoted, Quote(a))
	}
	var b strings.Builder
	b.WriteString(archDetect(req.Arch))
	b.WriteString(`[ -n "$arch" ] && url=` + quoteTemplate(downloadURL(s)) + ` && `)
	b.WriteString(checksum(s))
	b.WriteString(`{ [ ${#sum} -eq 128 ] || { echo "keadm: no SHA-512 checksum for $url" >&2; false; }; } && `)
	b.WriteString(`{ curl -fsSL -o keadm.tar.gz "$url" || wget -qO keadm.tar.gz "$url"; } && `)
	b.WriteString(`echo "$sum  keadm.tar.gz" | sha512sum -c - && `)
	b.WriteString(`tar -xzf keadm.tar.gz && chmod +x ` + keadm + ` && `)
	b.WriteString(keadm + " " + strings.Join(quoted, " "))
	return b.String()
}
