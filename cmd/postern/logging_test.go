package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"postern/internal/config"
)

// TestLogDurations checks that a duration is written as seconds, a
// number, in JSON and in text, inside groups too.
func TestLogDurations(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := newLogger(config.Log{Level: slog.LevelInfo, Format: config.LogJSON}, &buf)
	log.Info("session end", "duration", 133*time.Millisecond, "window", 10*time.Minute,
		slog.Group("g", slog.Duration("delay", 1500*time.Microsecond)), "n", 3)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if rec["duration"] != 0.133 || rec["window"] != 600.0 || rec["n"] != 3.0 {
		t.Errorf("JSON durations: %s", buf.String())
	}
	if g, _ := rec["g"].(map[string]any); g["delay"] != 0.0015 {
		t.Errorf("JSON duration in a group: %s", buf.String())
	}
	buf.Reset()
	log = newLogger(config.Log{Level: slog.LevelInfo, Format: config.LogText}, &buf)
	log.Info("session end", "duration", 133*time.Millisecond, "deadline", 5*time.Second)
	if !strings.Contains(buf.String(), "duration=0.133 deadline=5") {
		t.Errorf("text durations: %s", buf.String())
	}
}
