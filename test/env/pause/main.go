// Command pause is the infra ("pause") container of the test runtime's pod
// sandboxes, a stand-in for registry.k8s.io/pause built without a registry.
//
// Like the Kubernetes pause container it does nothing but hold the pod's
// namespaces: it sleeps until SIGINT or SIGTERM and then exits 0, and it reaps
// zombies on SIGCHLD so that, as PID 1 of a pod sharing its PID namespace, it
// does not leave orphans defunct.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is printed by -v, as the Kubernetes pause binary does.
const version = "berth-test-3.9"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Printf("pause.go %s\n", version)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		switch sig {
		case syscall.SIGCHLD:
			reap()
		default:
			fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", sig)
			os.Exit(0)
		}
	}
}

// reap collects every child that has exited. Signals coalesce, so one
// SIGCHLD may stand for several exits: loop until none is left.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
