package queue

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// v1Record returns the record a version-1 writer made for env and data:
// the same layout, version byte 1, and no flag beyond SMTPUTF8.
func v1Record(env *Envelope, data []byte) []byte {
	rec := appendRecord(nil, env, data)
	rec[4] = 1
	crc := crc32.Update(0, crcTable, rec[:16])
	crc = crc32.Update(crc, crcTable, rec[recordHeaderLen:])
	binary.BigEndian.PutUint32(rec[16:20], crc)
	return rec
}

func TestEnvelopeVersions(t *testing.T) {
	env := testEnv("v2", "a@x")
	env.RequireTLS = true
	rec := appendRecord(nil, env, []byte("x"))
	rh, err := parseHeader(rec)
	if err != nil {
		t.Fatal(err)
	}
	if rh.version != 2 {
		t.Errorf("new records have version %d, want 2", rh.version)
	}
	got, err := decodeEnvelope(rec[recordHeaderLen:recordHeaderLen+rh.envLen], rh.version)
	if err != nil || !got.RequireTLS || !got.SMTPUTF8 {
		t.Fatalf("v2 decode: %+v, %v", got, err)
	}
	// A version-1 record cannot carry RequireTLS: the bit is corruption there.
	if _, err := decodeEnvelope(rec[recordHeaderLen:recordHeaderLen+rh.envLen], 1); err == nil {
		t.Error("version 1 accepted the RequireTLS flag")
	}
	if _, err := decodeEnvelope(rec[recordHeaderLen:recordHeaderLen+rh.envLen], 3); err == nil {
		t.Error("unknown version 3 accepted")
	}
}

// A spool written before REQUIRETLS existed opens and reads as before.
func TestVersion1RecordsStayReadable(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "segments"), 0o700); err != nil {
		t.Fatal(err)
	}
	env := testEnv("old00000000000000001", "a@x", "b@y")
	data := testData(env.ID, 500)
	rec := v1Record(env, data)
	if err := os.WriteFile(filepath.Join(dir, "segments", segName(1)), rec, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, dir, 0)
	defer s.Close()
	got, gotData, err := s.Get(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.RequireTLS || !got.SMTPUTF8 || got.From != env.From || len(got.Recipients) != 2 || string(gotData) != string(data) {
		t.Errorf("version-1 record read back as %+v", got)
	}
	// New records go next to it, in version 2.
	env2 := testEnv(testID(), "c@z")
	env2.RequireTLS = true
	mustPut(t, s, env2, []byte("y"))
	if got, _, err := s.Get(env2.ID); err != nil || !got.RequireTLS {
		t.Errorf("version-2 record: %+v, %v", got, err)
	}
}

func TestStateVersions(t *testing.T) {
	rcpts := []string{"a@x", "b@y"}
	st := []RecipientState{
		{Status: StatusDeferred, Attempts: 3, NextAttempt: time.Unix(1_800_000_100, 0), Updated: time.Unix(1_800_000_000, 5),
			LastError: "451 try later", Code: "4.3.0", Diagnostic: "smtp; 451 4.3.0 try later", RemoteMTA: "mx.y", Warned: true},
		{Status: StatusDelivered, Attempts: 1, Updated: time.Unix(1_800_000_000, 0)},
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
