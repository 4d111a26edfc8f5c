package main

import (
	"flag"
	"fmt"
	"io"

	"postern/internal/config"
)

// cmdConfig implements `postern config [-n | -d] [--config FILE | --data
// DIR]`: the effective configuration as TOML, every key with the value
// the server uses (as postconf); with -n only the keys whose value
// differs from the default (as postconf -n); with -d the defaults (as
// postconf -d). What it prints loads back as the same configuration.
func cmdConfig(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cf configFlags
	cf.register(fs)
	changed := fs.Bool("n", false, "only the keys whose value differs from the default (as postconf -n)")
	defaults := fs.Bool("d", false, "the defaults (as postconf -d)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usageError{fmt.Sprintf("config: unexpected argument %q", pos[0])}
	case *changed && *defaults:
		return usageError{"config: -n and -d exclude each other"}
	}
	if *defaults {
		d := config.Defaults()
		fmt.Fprintln(stdout, "# postern config -d: the defaults (derived ones, such as local_domains, from this host's name)")
		if err := d.WriteTOML(stdout, nil); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stdout, "\n# [acme] is on when present; its defaults:\n# directory_url = %q\n# challenge = %q\n# http_address = %q\n# tls_alpn_address = %q\n# renew_before = %q\n# hostnames = [hostname]\n",
			config.DefaultACMEDirectory, config.ChallengeHTTP01, config.DefaultACMEHTTPAddress, config.DefaultACMETLSALPNAddress, config.DefaultACMERenewBefore.String())
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	src := cfg.Source
	if src == "" {
		src = "the embedded default"
	}
	var base *config.Config
	if *changed {
		base = config.Defaults()
		fmt.Fprintf(stdout, "# postern config -n: what %s sets apart from the defaults\n", src)
	} else {
		fmt.Fprintf(stdout, "# postern config: the configuration in effect, from %s with its defaults\n", src)
	}
	return cfg.WriteTOML(stdout, base)
}
