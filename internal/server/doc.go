// Package server assembles a running Postern from a configuration: the
// user directory, the spool, local and remote delivery, the SMTP
// listeners, the admission gate and the auth-abuse engine, the admin API
// and the HTTP endpoints; it reloads what can change live (SIGHUP,
// `postern reload`), drains and stops on SIGTERM, and hands over to a
// new process on a graceful restart (SIGUSR2, `postern restart`).
//
// It is a package of its own, not part of the command, so that the
// binary's commands stay thin (cmd/postern parses the flags of `postern
// serve` and calls Run) and a test can start a server in-process. The
// packages it wires take plain options: the converters from the
// configuration (options.go) are the one place where a configuration
// value becomes a package's option, one pure function for each package.
//
// The steps of a start are named in Run; the parts a reload builds again
// are in live.go, the reload itself in reload.go.
//
// Besides Run, `postern check` and `postern user` use the same loaders
// serve uses (NewChecker, RunChecks, OpenUsers, NewResolver), so that
// check fails wherever serve would refuse to start.
package server
