package probes

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestTCPProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	open := l.Addr().(*net.TCPAddr).Port
	closed := closedPort(t)
	ports := &v1.Container{Ports: []v1.ContainerPort{{Name: "db", ContainerPort: int32(open)}}}
	for _, tc := range []struct {
		name    string
		s       *v1.TCPSocketAction
		tgt     target
		want    Outcome
		wantOut string
	}{
		{"listening", &v1.TCPSocketAction{Port: intstr.FromInt32(int32(open))}, target{podIP: "127.0.0.1"}, Passed, ""},
		{"listening, explicit host", &v1.TCPSocketAction{Host: "127.0.0.1", Port: intstr.FromInt32(int32(open))}, target{}, Passed, ""},
		{"named port", &v1.TCPSocketAction{Port: intstr.FromString("db")}, target{podIP: "127.0.0.1", container: ports}, Passed, ""},
		{"closed port", &v1.TCPSocketAction{Port: intstr.FromInt32(int32(closed))}, target{podIP: "127.0.0.1"}, Failed, "dial tcp 127.0.0.1:"},
		{"unknown port name", &v1.TCPSocketAction{Port: intstr.FromString("web")}, target{podIP: "127.0.0.1", container: ports}, Errored, `tcpSocket probe: port "web"`},
		{"no pod IP", &v1.TCPSocketAction{Port: intstr.FromInt32(int32(open))}, target{}, Errored, "tcpSocket probe: the pod has no IP address yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tcpProbe(context.Background(), tc.s, tc.tgt, time.Second)
			if a.outcome != tc.want || !strings.HasPrefix(a.output, tc.wantOut) {
				t.Errorf("got %s %q, want %s %q…", a.outcome, a.output, tc.want, tc.wantOut)
			}
		})
	}
}
