// Command runc-caps runs runc without the capabilities this machine's kernel does not grant.
//
// A privileged container asks runc for every capability; on a VM whose capability bounding set lacks some (here
// CAP_SYS_RESOURCE), runc fails with "unable to apply caps: operation not permitted". Registered as an OCI
// runtime (dockerd --add-runtime, or containerd's runtime BinaryName), it removes from the container's spec every
// capability outside the bounding set of its own process, then execs runc with the same arguments: `runc create
// --bundle DIR` reads DIR/config.json, `runc exec --process FILE` reads FILE, and both are filtered.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// capabilityNames are the Linux capabilities by number (linux/capability.h), as OCI specs name them.
var capabilityNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

const runc = "/usr/sbin/runc"

func main() {
	missing, err := missingCapabilities()
	if err != nil {
		fail("reading the bounding set: %v", err)
	}
	if len(missing) > 0 {
		for _, spec := range specFiles(os.Args[1:]) {
			if err := filterFile(spec, missing); err != nil {
				fail("%s: %v", spec, err)
			}
		}
	}
	if err := syscall.Exec(runc, append([]string{runc}, os.Args[1:]...), os.Environ()); err != nil {
		fail("running %s: %v", runc, err)
	}
}

// missingCapabilities are the known capabilities outside this process's bounding set (CapBnd).
func missingCapabilities() (map[string]bool, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		hex, ok := strings.CutPrefix(line, "CapBnd:")
		if !ok {
			continue
		}
		bounding, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return nil, err
		}
		missing := map[string]bool{}
		for bit, name := range capabilityNames {
			if bounding&(1<<uint(bit)) == 0 {
				missing[name] = true
			}
		}
		return missing, nil
	}
	return nil, fmt.Errorf("no CapBnd line")
}

// specFiles are the OCI files runc will read for these arguments: the bundle's config.json for create/run, the
// process file for exec.
func specFiles(args []string) []string {
	var files []string
	for i, arg := range args {
		value := ""
		name, inline, hasInline := strings.Cut(arg, "=")
		switch {
		case hasInline:
			value = inline
		case i+1 < len(args):
			value = args[i+1]
		}
		switch name {
		case "--bundle", "-b":
			files = append(files, filepath.Join(value, "config.json"))
		case "--process", "-p":
			files = append(files, value)
		}
	}
	return files
}

// filterFile removes the missing capabilities from every capability list in an OCI spec or process file.
func filterFile(path string, missing map[string]bool) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return err
	}
	process := doc
	if p, ok := doc["process"].(map[string]any); ok {
		process = p
	}
	caps, ok := process["capabilities"].(map[string]any)
	if !ok {
		return nil
	}
	for set, list := range caps {
		names, ok := list.([]any)
		if !ok {
			continue
		}
		kept := make([]any, 0, len(names))
		for _, name := range names {
			if s, ok := name.(string); !ok || !missing[s] {
				kept = append(kept, name)
			}
		}
		caps[set] = kept
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, info.Mode())
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "runc-caps: "+format+"\n", args...)
	os.Exit(1)
}
