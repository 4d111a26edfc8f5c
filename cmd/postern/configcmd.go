package main

import (
	"flag"
	"fmt"
	"io"

	"postern/internal/config"
)

// configPrintFlags is `postern config [-n | -d]`: the effective
// configuration as TOML, every key with the value the server uses (as
// postconf); with -n only the keys whose value differs from the default
// (as postconf -n); with -d the defaults (as postconf -d). What it
// prints loads back as the same configuration.
func configPrintFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	cf := c.configFlags(fs)
	changed := fs.Bool("n", false, "only the keys whose value differs from the default (as postconf -n)")
	defaults := fs.Bool("d", false, "the defaults (as postconf -d)")
	return func([]string) error {
		if *changed && *defaults {
			return usageError("config: -n and -d exclude each other")
		}
		if *defaults {
			return printDefaults(c.stdout)
		}
		cfg, err := cf.load()
		if err != nil {
			return err
		}
		var base *config.Config
		if *changed {
			base = config.Defaults()
			fmt.Fprintf(c.stdout, "# postern config -n: what %s sets apart from the defaults\n", orDefault(cfg.Source))
		} else {
			fmt.Fprintf(c.stdout, "# postern config: the configuration in effect, from %s with its defaults\n", orDefault(cfg.Source))
		}
		return cfg.WriteTOML(c.stdout, base)
	}
}

// printDefaults writes the defaults (postern config -d), and those of
// [acme] and [autoconfig], which are on when present, as comments.
func printDefaults(w io.Writer) error {
	fmt.Fprintln(w, "# postern config -d: the defaults (derived ones, such as local_domains, from this host's name)")
	if err := config.Defaults().WriteTOML(w, nil); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n# [acme] is on when present; its defaults:\n# directory_url = %q\n# challenge = %q\n# http_address = %q\n# tls_alpn_address = %q\n# renew_before = %q\n# hostnames = [hostname]\n"+
		"\n# [autoconfig] is on when present; its defaults:\n# address = %q\n# imap_host = \"\"\n# imap_port = %d\n# acme_names = true\n",
		config.DefaultACMEDirectory, config.ChallengeHTTP01, config.DefaultACMEHTTPAddress, config.DefaultACMETLSALPNAddress, config.DefaultACMERenewBefore.String(),
		config.DefaultAutoconfigAddress, config.DefaultIMAPPort)
	return err
}
