package probes

import (
	"context"
	"net"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
)

// tcpProbe passes when a TCP connection to the port opens within the timeout; the connection is
// closed at once, nothing is sent.
func tcpProbe(ctx context.Context, s *v1.TCPSocketAction, t target, timeout time.Duration) attempt {
	port, err := resolvePort(s.Port, t.container)
	if err != nil {
		return errorf("tcpSocket probe: %v", err)
	}
	host, err := hostOf(s.Host, t)
	if err != nil {
		return errorf("tcpSocket probe: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fail("%v", err)
	}
	conn.Close()
	return pass("")
}
