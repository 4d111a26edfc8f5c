// Command postern is the Postern mail server and its administration
// tool: `postern serve` runs the server, the other commands administer
// it (users, the queue, bans, DKIM keys, reloads and graceful restarts).
// The command table (commands.go) lists them; `postern help` prints
// their usage and `postern help --man` the manual page made from it.
//
// This package and serve's wiring (internal/server) read the
// configuration; internal/server wires the other packages together and
// passes them plain values. Every command
// finds the configuration the same way (configFlags.load): --config,
// $POSTERN_CONFIG, /etc/postern/postern.toml, or the embedded default
// (data in ./postern-data or --data DIR, domain localhost, listeners on
// 127.0.0.1:2525 mx, :2587 submission, :2465 submissions, HTTP :2580).
package main

import (
	"os"
	"path/filepath"
)

func main() {
	c := newCLI(os.Stdin, os.Stdout, os.Stderr)
	args := os.Args[1:]
	switch filepath.Base(os.Args[0]) {
	case "sendmail": // a sendmail link (sendmail.go)
		os.Exit(c.sendmail(args))
	case "mailq": // a mailq link: the queue
		args = append([]string{"queue", "list"}, args...)
	}
	os.Exit(c.run(args))
}
