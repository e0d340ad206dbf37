package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/agent"
)

// runPods implements `berth pods`: it asks the running agent over <rootDir>/berth.sock and prints a
// table, or the agent's JSON with -o json.
func runPods(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("berth pods", flag.ContinueOnError)
	var f daemonFlags
	f.register(fs) // same --config / --root-dir as the daemon
	output := fs.String("o", "table", "output format: table or json")
	fs.StringVar(output, "output", "table", "output format: table or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return fmt.Errorf("-o %q: want table or json", *output)
	}
	list, raw, err := fetchPods(agent.SocketPath(f.rootDir))
	if err != nil {
		return err
	}
	if *output == "json" {
		_, err := out.Write(raw)
		return err
	}
	printPods(out, list, time.Now())
	return nil
}

func fetchPods(socket string) (*agent.PodList, []byte, error) {
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}
	resp, err := client.Get("http://berth/pods")
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			return nil, nil, fmt.Errorf("cannot reach Berth at %s: is it running, with the same --root-dir? (%v)", socket, opErr.Err)
		}
		return nil, nil, fmt.Errorf("cannot reach Berth at %s: %v", socket, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("reading from %s: %w", socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s answered %s: %s", socket, resp.Status, strings.TrimSpace(string(raw)))
	}
	var list agent.PodList
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, nil, fmt.Errorf("%s answered something that is not a pod list: %w", socket, err)
	}
	return &list, raw, nil
}

func printPods(out io.Writer, list *agent.PodList, now time.Time) {
	tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tNAMESPACE\tUID\tPHASE\tREADY\tRESTARTS\tAGE\tLAST ERROR")
	for _, p := range list.Pods {
		age := "-"
		if p.StartTime != nil {
			age = humanAge(now.Sub(*p.StartTime))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\n", p.Name, p.Namespace, p.UID, p.Phase,
			p.Ready, p.Total, p.Restarts, age, oneLine(p.Error, 100))
	}
	tw.Flush()
	if len(list.ManifestErrors) > 0 {
		fmt.Fprintln(out)
		tw = tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
		fmt.Fprintln(tw, "MANIFEST\tERROR")
		for _, e := range list.ManifestErrors {
			fmt.Fprintf(tw, "%s\t%s\n", e.File, oneLine(e.Error, 200))
		}
		tw.Flush()
	}
}

// humanAge formats a duration as kubectl's AGE column does (45s, 12m, 5h, 3d).
func humanAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max-1] + "…"
	}
	return s
}
