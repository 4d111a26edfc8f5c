package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"

	"postern"
)

// writeVersion writes v as `postern version` prints it:
//
//	postern 0.9.0
//	revision 25e3e00a1b2c3d4e5f60718293a4b5c6d7e8f901 (2026-05-01T10:00:00Z), modified
//	go1.26.0 linux/amd64
func writeVersion(w io.Writer, v postern.Build) {
	fmt.Fprintf(w, "postern %s\n", v.Version)
	switch {
	case v.Revision != "":
		fmt.Fprintf(w, "revision %s", v.Revision)
		if v.Time != "" {
			fmt.Fprintf(w, " (%s)", v.Time)
		}
		if v.Modified {
			fmt.Fprint(w, ", modified")
		}
		fmt.Fprintln(w)
	case v.Module != "":
		fmt.Fprintf(w, "module %s\n", v.Module)
	}
	fmt.Fprintf(w, "%s %s/%s\n", v.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// versionFlags is `postern version`.
func versionFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	return func([]string) error {
		writeVersion(c.stdout, postern.ReadBuild())
		return nil
	}
}
