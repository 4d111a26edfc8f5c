package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// parseSize parses a size string: a decimal integer followed by an
// optional unit, B, KiB, MiB, GiB (powers of 1024) or kB/KB, MB, GB
// (powers of 1000), with optional spaces between: "35MiB", "10 MB",
// "1048576". Units are case-sensitive.
func parseSize(s string) (int64, error) {
	// Longest suffixes first, so that "MiB" is tried before "B".
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"kB", 1000}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
		{"B", 1},
	}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || num == "" || num[0] == '+' || num[0] == '-' {
		return 0, fmt.Errorf("invalid size %q (use bytes or a number with B, KiB, MiB, GiB, kB, MB or GB, as in \"35MiB\")", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

// parseDuration parses a Go duration string ("90s", "5m", "1h30m"); it
// refuses negative durations.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use a number with a unit: ms, s, m or h, as in \"90s\" or \"5m\")", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q must not be negative", s)
	}
	return d, nil
}
