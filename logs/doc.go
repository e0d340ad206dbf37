// Package logs rotates the CRI log files of running containers, as the kubelet's container log
// manager does: the runtime (containerd) writes each container's stdout and stderr to one file,
// <podLogsDir>/<ns>_<pod>_<uid>/<container>/<restart>.log, and never rotates it itself.
//
// Every Interval (containerLogMonitorInterval, 10 s) the Rotator lists the running containers Berth
// manages and, for each, looks at its log path:
//
//	<restart>.log                       the current file, the runtime writes here
//	<restart>.log.20261127-021503       rotated, newest: left as it is (the runtime may still be
//	                                    flushing into it for a moment after the reopen)
//	<restart>.log.20261127-020955.gz    rotated, older: gzipped
//	<restart>.log.*.tmp                 a compression cut short (crash): removed
//
// One pass over a container, in this order:
//
//  1. remove leftover .tmp files;
//  2. remove the oldest rotated files until at most MaxFiles-2 are left (room for the file about to
//     be rotated and the current one);
//  3. gzip every rotated file but the newest (to <name>.gz via <name>.gz.tmp, then remove <name>);
//  4. when the current file is larger than MaxSize: rename it to <name>.<YYYYMMDD-hhmmss> (UTC) and
//     call CRI ReopenContainerLog, after which the runtime writes to a new file at the log path.
//     When the reopen fails the rename is undone, so the runtime keeps writing where readers look.
//
// Steps 1–3 list the log's directory; they run on the first pass over a container and on the pass
// after each rotation, since nothing else makes rotated files (the log path is asked of the runtime
// once per container too). A pass over a log that did not grow past MaxSize is one stat.
//
// So a container never has more than MaxFiles files (counting the current one), and a rotation
// costs one rename and one CRI call; the copy into gzip happens one pass later, off the hot path.
// Readers (the node server's /containerLogs) read the current file and, when following, move on
// to the new file once the one they read was renamed away, as the kubelet does.
package logs
