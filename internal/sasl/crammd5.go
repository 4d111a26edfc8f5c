package sasl

import (
	"crypto/md5"
	"encoding"
	"encoding/binary"
	"fmt"
)

// md5Resume returns an MD5 hash whose state is s, as after 64 octets of
// input: crypto/md5's UnmarshalBinary form is "md5\x01", the words A, B, C,
// D big-endian, the 64-octet buffer and the length so far, big-endian.
func md5Resume(s [16]byte) (hashWriter, error) {
	st := make([]byte, 0, 4+16+md5.BlockSize+8)
	st = append(st, "md5\x01"...)
	for i := range 4 {
		st = binary.BigEndian.AppendUint32(st, binary.LittleEndian.Uint32(s[4*i:]))
	}
	st = append(st, make([]byte, md5.BlockSize)...)
	st = binary.BigEndian.AppendUint64(st, md5.BlockSize)
	h := md5.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st); err != nil {
		return nil, fmt.Errorf("resume MD5: %w", err)
	}
	return h, nil
}

// hashWriter is the part of hash.Hash cramDigest uses.
type hashWriter interface {
	Write([]byte) (int, error)
	Sum([]byte) []byte
}

// cramDigest computes HMAC-MD5(key, msg) from the key's stored contexts
// (RFC 2104 §2: H(K XOR opad, H(K XOR ipad, text))).
func cramDigest(sec CRAMMD5Secret, msg []byte) ([]byte, error) {
	in, err := md5Resume(sec.Inner)
	if err != nil {
		return nil, err
	}
	in.Write(msg)
	out, err := md5Resume(sec.Outer)
	if err != nil {
		return nil, err
	}
	out.Write(in.Sum(nil))
	return out.Sum(nil), nil
}
