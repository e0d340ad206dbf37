package cri

import (
	"strings"
	"testing"
)

func TestPidFromInfo(t *testing.T) {
	tests := []struct {
		name    string
		info    map[string]string
		want    int
		wantErr string
	}{
		{"containerd", map[string]string{"info": `{"sandboxID":"abc","pid":4242,"removing":false}`}, 4242, ""},
		{"no info", map[string]string{}, 0, `no "info"`},
		{"not JSON", map[string]string{"info": "pid=1"}, 0, "verbose container info"},
		{"no pid (exited)", map[string]string{"info": `{"pid":0}`}, 0, "no pid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pidFromInfo(tt.info)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("pidFromInfo = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}
