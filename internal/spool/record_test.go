package spool

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"postern/internal/smtp"
	"postern/internal/spool/spooltest"
)

// legacyRecord returns the record a version-v writer made for env and
// data: the same layout, version byte v, and only what v can carry.
func legacyRecord(env *smtp.Envelope, data []byte, v byte) []byte {
	e := appendEnvelope(nil, env, v)
	rec := make([]byte, recordHeaderLen, recordHeaderLen+len(e)+len(data))
	copy(rec, recordMagic[:])
	rec[4] = v
	binary.BigEndian.PutUint32(rec[8:12], uint32(len(e)))
	binary.BigEndian.PutUint32(rec[12:16], uint32(len(data)))
	rec = append(append(rec, e...), data...)
	crc := crc32.Update(0, crcTable, rec[:16])
	crc = crc32.Update(crc, crcTable, rec[recordHeaderLen:])
	binary.BigEndian.PutUint32(rec[16:20], crc)
	return rec
}

// v1Record returns the record a version-1 writer made for env and data.
func v1Record(env *smtp.Envelope, data []byte) []byte { return legacyRecord(env, data, 1) }

func TestEnvelopeVersions(t *testing.T) {
	t.Parallel()
	env := spooltest.Env("v3", "a@x")
	env.RequireTLS = true
	env.Hold, env.HoldReason = true, "send limit: messages per hour"
	rec := appendRecord(nil, env, []byte("x"))
	rh, err := parseHeader(rec)
	if err != nil {
		t.Fatal(err)
	}
	if rh.version != 3 {
		t.Errorf("new records have version %d, want 3", rh.version)
	}
	got, err := decodeEnvelope(rec[recordHeaderLen:recordHeaderLen+rh.envLen], rh.version)
	if err != nil || !got.RequireTLS || !got.SMTPUTF8 || !got.Hold || got.HoldReason != env.HoldReason {
		t.Fatalf("v3 decode: %+v, %v", got, err)
	}
	// A version-2 record cannot carry Hold, nor version 1 RequireTLS: the
	// bit is corruption there.
	// The version-3 encoding without its last field is the version-2
	// layout with the Hold bit set.
	if _, err := decodeEnvelope(appendEnvelope(nil, env, 3)[:len(appendEnvelope(nil, env, 2))], 2); err == nil {
		t.Error("version 2 accepted the Hold flag")
	}
	noHold := *env
	noHold.Hold = false
	if _, err := decodeEnvelope(appendEnvelope(nil, &noHold, 2), 1); err == nil {
		t.Error("version 1 accepted the RequireTLS flag")
	}
	if _, err := decodeEnvelope(rec[recordHeaderLen:recordHeaderLen+rh.envLen], maxRecordVersion+1); err == nil {
		t.Error("an unknown version accepted")
	}
}

// openOldSegment opens a spool whose one segment holds rec, a record
// an older release wrote for env, and reads env's message back.
func openOldSegment(t *testing.T, env *smtp.Envelope, rec []byte) (s *Spool, got *smtp.Envelope, data []byte) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "segments"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "segments", segName(1)), rec, 0o600); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, 0)
	got, data, err := s.Get(env.ID)
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	return s, got, data
}

// A spool written before REQUIRETLS existed opens and reads as before.
func TestVersion1RecordsStayReadable(t *testing.T) {
	t.Parallel()
	env := spooltest.Env("old00000000000000001", "a@x", "b@y")
	data := spooltest.Data(env.ID, 500)
	s, got, gotData := openOldSegment(t, env, v1Record(env, data))
	defer s.Close()
	if got.RequireTLS || !got.SMTPUTF8 || got.From != env.From || len(got.Recipients) != 2 || string(gotData) != string(data) {
		t.Errorf("version-1 record read back as %+v", got)
	}
	// New records go next to it, in version 2.
	env2 := spooltest.Env(spooltest.ID(), "c@z")
	env2.RequireTLS = true
	mustPut(t, s, env2, []byte("y"))
	if got, _, err := s.Get(env2.ID); err != nil || !got.RequireTLS {
		t.Errorf("version-2 record: %+v, %v", got, err)
	}
}

func TestStateVersions(t *testing.T) {
	t.Parallel()
	rcpts := []string{"a@x", "b@y", "c@z"}
	st := []RecipientState{
		{Status: StatusDeferred, Attempts: 3, NextAttempt: time.Unix(1_800_000_100, 0), Updated: time.Unix(1_800_000_000, 5),
			LastError: "451 try later", Code: "4.3.0", Diagnostic: "smtp; 451 4.3.0 try later", RemoteMTA: "mx.y", Warned: true},
		{Status: StatusDelivered, Attempts: 1, Updated: time.Unix(1_800_000_000, 0)},
		{Status: StatusHeld, Attempts: 2, LastError: "451 try later", OperatorHold: true, Warned: true},
	}
	got, err := decodeStates(encodeStates(rcpts, st), rcpts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range st {
		if !reflect.DeepEqual(got[i], st[i]) {
			t.Errorf("state %d: %+v, want %+v", i, got[i], st[i])
		}
	}
	// Version 1, as the previous writer made it.
	v1 := binary.AppendUvarint(nil, 1)
	v1 = appendString(v1, "b@y")
	v1 = append(v1, byte(StatusFailed))
	v1 = binary.AppendUvarint(v1, 2)
	v1 = binary.AppendVarint(v1, 0)
	v1 = binary.AppendVarint(v1, 1_800_000_000_000_000_000)
	v1 = appendString(v1, "no such mailbox")
	got, err = decodeStates(v1, rcpts)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Status != StatusPending || got[1].Status != StatusFailed || got[1].Attempts != 2 || got[1].LastError != "no such mailbox" {
		t.Errorf("version 1 decoded as %+v", got)
	}
	if _, err := decodeStates([]byte{0, 9, 1}, rcpts); err == nil {
		t.Error("unknown state version accepted")
	}
}

// A spool written before holds existed (version 2) opens and reads as
// before: nothing in it is held.
func TestVersion2RecordsStayReadable(t *testing.T) {
	t.Parallel()
	env := spooltest.Env("old00000000000000002", "a@x")
	env.RequireTLS = true
	data := spooltest.Data(env.ID, 300)
	s, got, gotData := openOldSegment(t, env, legacyRecord(env, data, 2))
	defer s.Close()
	if !got.RequireTLS || got.Hold || got.HoldReason != "" || string(gotData) != string(data) {
		t.Errorf("version-2 record read back as %+v", got)
	}
	if it, _ := s.Lookup(env.ID); it.Held || it.Recipients[0].State.Status != StatusPending {
		t.Errorf("version-2 message: %+v, want pending", it)
	}
	held := spooltest.Env(spooltest.ID(), "b@y")
	held.Hold, held.HoldReason = true, "send limit: recipients per hour"
	mustPut(t, s, held, []byte("y"))
	if got, _, err := s.Get(held.ID); err != nil || !got.Hold || got.HoldReason != held.HoldReason {
		t.Errorf("version-3 record: %+v, %v", got, err)
	}
}

// The DSN parameters (RFC 3461) need version 5: a record without them
// keeps version 3 (or 4 in a blob), which older releases read; a
// version-4 record cannot carry them, and NOTIFY bits the session never
// makes are corruption.
func TestDSNRecordVersion(t *testing.T) {
	t.Parallel()
	env := spooltest.Env("v5", "a@x", "b@y")
	version := func(env *smtp.Envelope, ref *blobRef) byte {
		return appendRecordParts(nil, env, []byte("x"), nil, ref)[4]
	}
	if v := version(env, nil); v != 3 {
		t.Errorf("without DSN: version %d, want 3", v)
	}
	if v := version(env, &blobRef{off: 0, n: 1}); v != 4 {
		t.Errorf("blob without DSN: version %d, want 4", v)
	}
	env.EnvID = "id"
	env.DSN = map[string]smtp.RcptDSN{"b@y": {Notify: smtp.NotifySuccess, ORcpt: "rfc822;c@z"}, "gone@x": {Notify: smtp.NotifyNever}}
	for _, ref := range []*blobRef{nil, {off: 0, n: 1}} {
		if v := version(env, ref); v != 5 {
			t.Errorf("with DSN (blob %v): version %d, want 5", ref != nil, v)
		}
	}
	enc := appendEnvelope(nil, env, 5)
	got, err := decodeEnvelope(enc, 5)
	if err != nil {
		t.Fatal(err)
	}
	// Only recipients of the message are stored.
	if got.EnvID != "id" || len(got.DSN) != 1 || got.RcptDSN("b@y") != env.DSN["b@y"] {
		t.Errorf("decoded %+v", got)
	}
	if _, err := decodeEnvelope(enc, 4); err == nil {
		t.Error("version 4 accepted the DSN flag")
	}
	for _, bad := range []smtp.Notify{smtp.NotifyNever | smtp.NotifySuccess, 1 << 5} {
		env.DSN = map[string]smtp.RcptDSN{"b@y": {Notify: bad}}
		if _, err := decodeEnvelope(appendEnvelope(nil, env, 5), 5); err == nil {
			t.Errorf("NOTIFY bits %#x accepted", byte(bad))
		}
	}
}
