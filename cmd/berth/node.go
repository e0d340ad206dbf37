package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// nodeIPs returns the --node-ip addresses, or the node's primary address: the first global unicast
// IPv4 address of the interface that holds the default route (as the kubelet picks it).
func nodeIPs(flagValue string) ([]string, error) {
	if flagValue != "" {
		var out []string
		for _, s := range strings.Split(flagValue, ",") {
			ip := net.ParseIP(strings.TrimSpace(s))
			if ip == nil {
				return nil, fmt.Errorf("--node-ip %q: %q is not an IP address", flagValue, s)
			}
			out = append(out, ip.String())
		}
		return out, nil
	}
	iface := defaultRouteInterface()
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing network interfaces: %v (set --node-ip)", err)
	}
	var fallback string
	for _, i := range ifaces {
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.To4() == nil || !ipn.IP.IsGlobalUnicast() {
				continue
			}
			if i.Name == iface {
				return []string{ipn.IP.String()}, nil
			}
			if fallback == "" && i.Flags&net.FlagLoopback == 0 {
				fallback = ipn.IP.String()
			}
		}
	}
	if fallback != "" {
		return []string{fallback}, nil
	}
	return []string{"127.0.0.1"}, nil
}

// defaultRouteInterface reads /proc/net/route for the interface of the IPv4 default route.
func defaultRouteInterface() string {
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 2 && f[1] == "00000000" && f[0] != "Iface" {
			return f[0]
		}
	}
	return ""
}

// memoryCapacity is MemTotal from /proc/meminfo, in bytes.
func memoryCapacity() (int64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("reading memory capacity: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo MemTotal %q: %w", f[1], err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("/proc/meminfo has no MemTotal")
}
