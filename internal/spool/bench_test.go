package spool

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"postern/internal/smtp"
	"postern/internal/spool/spooltest"
)

func benchPut(b *testing.B, parallel int) {
	s := openTest(b, b.TempDir(), 0)
	defer s.Close()
	data := spooltest.Data("bench", 10<<10)
	var seq atomic.Uint64
	env := func() *smtp.Envelope {
		return spooltest.Env(fmt.Sprintf("b%019d", seq.Add(1)), "a@local.test", "b@remote.example")
	}
	before := s.Stats()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	if parallel == 0 {
		for range b.N {
			if err := s.Put(context.Background(), env(), data); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		// RunParallel starts parallel*GOMAXPROCS goroutines.
		b.SetParallelism(parallel)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Put(context.Background(), env(), data); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	st := s.Stats()
	n := float64(st.Messages - before.Messages)
	b.ReportMetric(n/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(st.Fsyncs-before.Fsyncs)/n, "fsyncs/msg")
}

// BenchmarkPut measures one Put at a time: one fsync per message.
func BenchmarkPut(b *testing.B) { benchPut(b, 0) }

// BenchmarkPutParallel measures concurrent Puts of 10 KiB messages from
// 8, 32 and 64 goroutines (on a 2-core machine: parallelism 4, 16, 32).
func BenchmarkPutParallel(b *testing.B) {
	for _, g := range []int{8, 32, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			p := max(1, g/runtime.GOMAXPROCS(0))
			benchPut(b, p)
		})
	}
}

// BenchmarkMarkRecipient measures state commits from 4 concurrent
// callers, as the Runner's default 4 workers make them.
func BenchmarkMarkRecipient(b *testing.B) {
	s := openTest(b, b.TempDir(), 0)
	defer s.Close()
	const n = 4096
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%019d", i)
		mustPut(b, s, spooltest.Env(ids[i], "a@x"), []byte("x"))
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(max(1, 4/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := ids[next.Add(1)%n]
			if err := s.MarkRecipientSync(id, "a@x", RecipientState{Status: StatusDeferred}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "marks/s")
}

// BenchmarkChange holds and then releases every recipient of a queue of
// 10,000 messages of three recipients each, as `postern queue hold --all` and `release --all`
// do: the figure is the time per message changed (two changes each).
func BenchmarkChange(b *testing.B) {
	const n = 10000
	s := openTest(b, b.TempDir(), 0)
	defer s.Close()
	data := spooltest.Data("bench", 2<<10)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%019d", i)
		if err := s.Put(context.Background(), spooltest.Env(ids[i], "a@local.test", "b@remote.example", "c@remote.example"), data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for _, op := range []Op{OpHold, OpRelease} {
			changed, err := s.Change(ids, op, nil)
			if err != nil || len(changed) != n {
				b.Fatalf("%v: %d changed, %v", op, len(changed), err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*n*b.N), "ns/msg")
}
