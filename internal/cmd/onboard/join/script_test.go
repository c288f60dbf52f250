package join

import (
	"bytes"
	"crypto/sha512"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// stubs are commands the script calls, each recording its argv NUL-separated in $LOG/<name>,
// so a real shell does the parsing and the test reads back exactly the words it produced.
var stubs = map[string]string{
	"uname": `echo "$STUB_UNAME"`,
	// curl and wget write an empty tarball with -o/-O <file>, and print $STUB_SUM (the published
	// checksum) to stdout otherwise. Their log keeps the last call: the tarball's download.
	"curl": `[ -n "$STUB_CURL_FAIL" ] && exit 22
args=("$@"); for ((i=0; i<${#args[@]}; i++)); do [ "${args[i]}" = -o ] && { : > "${args[i+1]}"; exit 0; }; done
echo "$STUB_SUM  published.tar.gz"`,
	"wget": `[ "$2" = - ] || [ "$1" = -qO- ] && { echo "$STUB_SUM"; exit 0; }
: > "$2"`,
	"tar":   `mkdir -p "${KEADM_AT%/*}" && cp "$STUBS/keadm" "$KEADM_AT"`,
	"chmod": `exit 0`,
	"keadm": `exit 0`,
}

func requireBash(t *testing.T) string {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed: the script tests need a real shell")
	}
	return bash
}

func writeStubs(t *testing.T) (dir, log string) {
	t.Helper()
	dir, log = t.TempDir(), t.TempDir()
	for name, body := range stubs {
		script := "#!/bin/bash\nprintf '%s\\0' \"$@\" > \"$LOG/" + name + "\"\n" + body + "\n"
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755))
	}
	return dir, log
}

// run executes the script in a fresh directory with the stubs first on PATH.
func run(t *testing.T, script, uname, keadmAt string, env ...string) (map[string][]string, error) {
	t.Helper()
	bash := requireBash(t)
	out, err := exec.Command(bash, "-n", "-c", script).CombinedOutput()
	require.NoError(t, err, "bash -n: %s", out)
	stubDir, log := writeStubs(t)
	cmd := exec.Command(bash, "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PATH=" + stubDir + ":/usr/bin:/bin", "LOG=" + log, "STUBS=" + stubDir, "STUB_SUM=" + emptySHA512,
		"STUB_UNAME=" + uname, "KEADM_AT=" + filepath.Join(cmd.Dir, keadmAt)}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	runErr := cmd.Run()
	argv := map[string][]string{}
	entries, err := os.ReadDir(log)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(log, e.Name()))
		require.NoError(t, err)
		argv[e.Name()] = strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	}
	if runErr != nil {
		t.Logf("script stderr: %s", stderr.String())
	}
	return argv, runErr
}

// emptySHA512 is the SHA-512 of the stubs' (empty) tarball.
var emptySHA512 = fmt.Sprintf("%x", sha512.Sum512(nil))

var testCC = Cloudcore{Address: "192.168.1.10", Websocket: 10000, Quic: 10001, HTTPS: 10002, TunnelPort: 10004}

func TestScriptPerArchitectureAndVersion(t *testing.T) {
	unames := map[string]string{"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "arm64": "arm64"}
	for _, flavor := range []Flavor{FlavorUpstream, FlavorKubeSphere} {
		for _, version := range []string{"v1.23.0", "v1.13.1", "v1.9.2"} {
			for uname, arch := range unames {
				t.Run(string(flavor)+"/"+version+"/"+uname, func(t *testing.T) {
					s := Settings{Flavor: flavor, Version: version, Region: "en", Labels: map[string]string{"site": "b-1"},
						ExtraFlags: []string{"--cgroupdriver=systemd"}}
					require.NoError(t, s.Validate())
					req := Request{NodeName: "edge-new", NodeIP: "10.20.0.9", Taint: true}
					keadmAt := "keadm-" + version + "-linux-" + arch + "/keadm/keadm"
					wantURL := "https://github.com/kubeedge/kubeedge/releases/download/" + version + "/keadm-" + version + "-linux-" + arch + ".tar.gz"
					if flavor == FlavorKubeSphere {
						keadmAt = "keadm"
						wantURL = "https://github.com/kubesphere/kubeedge/releases/download/" + version + "-kubesphere/keadm-" + version + "-linux-" + arch + ".tar.gz"
					}
					argv, err := run(t, Script(s, testCC, joinToken, req), uname, keadmAt)
					require.NoError(t, err)
					assert.Equal(t, []string{"-fsSL", "-o", "keadm.tar.gz", wantURL}, argv["curl"])
					assert.Equal(t, []string{"-xzf", "keadm.tar.gz"}, argv["tar"])
					assert.Equal(t, []string{"+x", "./" + strings.TrimPrefix(keadmAt, "./")}, argv["chmod"])
					assert.Equal(t, KeadmArgs(s, testCC, joinToken, req), argv["keadm"])
					assert.NotContains(t, argv, "wget", "wget is only the fallback")
				})
			}
		}
	}
}

func TestScriptArgumentsParseBack(t *testing.T) {
	s := Settings{Flavor: FlavorUpstream, Version: "v1.23.0", Mirror: "https://mirror.example.com/keadm/{version}/{arch}.tgz"}
	req := Request{NodeName: "edge-new", NodeIP: "2001:db8::9", Arch: "arm64"}
	cc := Cloudcore{Address: "2001:db8::1", Websocket: 30000, Quic: 30001, HTTPS: 30002, TunnelPort: 30004}
	// uname would say x86_64, but the request pinned arm64.
	argv, err := run(t, Script(s, cc, joinToken, req), "x86_64", "keadm-v1.23.0-linux-arm64/keadm/keadm", "STUB_CURL_FAIL=1")
	require.NoError(t, err)
	assert.NotContains(t, argv, "uname")
	assert.Equal(t, []string{"-qO", "keadm.tar.gz", "https://mirror.example.com/keadm/v1.23.0/arm64.tgz"}, argv["wget"], "wget after curl fails")
	assert.Equal(t, []string{"join", "--kubeedge-version=v1.23.0", "--cloudcore-ipport=[2001:db8::1]:30000", "--certport=30002",
		"--edgenode-name=edge-new", "--token=" + joinToken, "--set=modules.edgeStream.enable=true,modules.edged.nodeIP=2001:db8::9"},
		argv["keadm"])
}

func TestScriptStopsOnUnknownArchitecture(t *testing.T) {
	s := Settings{Flavor: FlavorUpstream, Version: "v1.23.0"}
	argv, err := run(t, Script(s, testCC, joinToken, Request{NodeName: "n", NodeIP: "10.0.0.9"}), "mips64", "x")
	require.Error(t, err)
	assert.NotContains(t, argv, "curl")
	assert.NotContains(t, argv, "keadm")
}

// TestScriptChecksKeadmBeforeRunningIt: keadm runs as root only from a tarball whose SHA-512
// matches the checksum published next to it, or the operator's pinned one, which then wins.
func TestScriptChecksKeadmBeforeRunningIt(t *testing.T) {
	s := Settings{Flavor: FlavorUpstream, Version: "v1.23.0"}
	req := Request{NodeName: "edge-new", NodeIP: "10.20.0.9"}
	at := "keadm-v1.23.0-linux-amd64/keadm/keadm"
	wrong := strings.Repeat("0", 128)

	argv, err := run(t, Script(s, testCC, joinToken, req), "x86_64", at)
	require.NoError(t, err, "published checksum matches")
	assert.Contains(t, argv, "keadm")
	for name, env := range map[string]string{"mismatch": "STUB_SUM=" + wrong, "no checksum published": "STUB_SUM="} {
		argv, err = run(t, Script(s, testCC, joinToken, req), "x86_64", at, env)
		require.Error(t, err, name)
		assert.NotContains(t, argv, "tar", name)
		assert.NotContains(t, argv, "keadm", name)
	}

	pinned := s
	pinned.KeadmSHA512 = map[string]string{"amd64": emptySHA512, "arm64": wrong}
	require.NoError(t, pinned.Validate())
	argv, err = run(t, Script(pinned, testCC, joinToken, req), "x86_64", at, "STUB_SUM="+wrong)
	require.NoError(t, err, "the pinned checksum wins over the published one")
	assert.Contains(t, argv, "keadm")
	for uname, arch := range map[string]string{"aarch64": "arm64", "armv7l": "arm"} {
		argv, err = run(t, Script(pinned, testCC, joinToken, req), uname, "keadm-v1.23.0-linux-"+arch+"/keadm/keadm")
		require.Error(t, err, "%s: pinned wrong or not pinned", arch)
		assert.NotContains(t, argv, "keadm", arch)
	}
}

func TestSettingsRefuseInsecureMirrorAndBadChecksums(t *testing.T) {
	base := Settings{Flavor: FlavorUpstream, Version: "v1.23.0"}
	for name, edit := range map[string]func(*Settings){
		"http mirror":     func(s *Settings) { s.Mirror = "http://mirror.example.com/kubeedge/" },
		"short checksum":  func(s *Settings) { s.KeadmSHA512 = map[string]string{"amd64": "abc"} },
		"sha256 checksum": func(s *Settings) { s.KeadmSHA512 = map[string]string{"amd64": strings.Repeat("a", 64)} },
		"unknown arch":    func(s *Settings) { s.KeadmSHA512 = map[string]string{"mips": emptySHA512} },
		"shell in sum":    func(s *Settings) { s.KeadmSHA512 = map[string]string{"amd64": "';reboot;'" + emptySHA512[11:]} },
	} {
		s := base
		edit(&s)
		assert.Error(t, s.Validate(), name)
	}
	_, err := base.Overlay(map[string]string{KeyMirror: "http://mirror.example.com/"})
	assert.ErrorContains(t, err, "https URL")
	s, err := base.Overlay(map[string]string{KeySHA512: "amd64=" + emptySHA512})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"amd64": emptySHA512}, s.KeadmSHA512)
}

func TestQuoteRoundTripsThroughBash(t *testing.T) {
	bash := requireBash(t)
	for name, v := range hostile {
		if strings.ContainsRune(v, 0) {
			continue // no shell word can hold NUL; validation refuses it before quoting
		}
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(bash, "-c", "printf '%s\\0' "+Quote(v)+" "+Quote("next")).Output()
			require.NoError(t, err)
			assert.Equal(t, v+"\x00next\x00", string(out))
		})
	}
}

// TestAPICommandRunsEndToEnd takes the command from the HTTP API, with cloudcore's ports and
// the mirror from their ConfigMaps, and runs it under bash with stub programs.
func TestAPICommandRunsEndToEnd(t *testing.T) {
	objs := baseObjects()
	objs[2].(*corev1.ConfigMap).Data[CloudcoreKey] = `modules:
  cloudHub:
    advertiseAddress: [cloudcore.example.com, 192.168.1.10]
    websocket: {port: 30000}
    quic: {port: 30001}
    https: {port: 30002}
  cloudStream: {tunnelPort: 30004}
`
	objs = append(objs, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kubeedge", Name: SettingsConfigMap},
		Data: map[string]string{KeyVersion: "v1.22.1", KeyMirror: "https://mirror.example.com/kubeedge/"}})
	f := newFixture(t, defaults(), objs...)
	code, resp, raw := f.get(t, "/api/v1alpha1/nodes/join", q("edge-new", "10.20.0.9", "add_default_taint", "true"))
	require.Equal(t, 200, code, raw)

	argv, err := run(t, resp.Data, "aarch64", "keadm-v1.22.1-linux-arm64/keadm/keadm")
	require.NoError(t, err)
	assert.Equal(t, []string{"-fsSL", "-o", "keadm.tar.gz", "https://mirror.example.com/kubeedge/v1.22.1/keadm-v1.22.1-linux-arm64.tar.gz"}, argv["curl"])
	assert.Equal(t, []string{"join", "--kubeedge-version=v1.22.1", "--cloudcore-ipport=cloudcore.example.com:30000", "--certport=30002",
		"--edgenode-name=edge-new", "--token=" + joinToken,
		"--set=modules.edgeStream.enable=true,modules.edged.nodeIP=10.20.0.9," +
			"modules.edged.tailoredKubeletConfig.registerWithTaints[0].key=node-role.kubernetes.io/edge," +
			"modules.edged.tailoredKubeletConfig.registerWithTaints[0].effect=NoSchedule"}, argv["keadm"])
}
