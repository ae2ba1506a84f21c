// Package cursor encodes the composite cursor of a multi-room stream: the
// position (epoch and sequence number) of every room of the stream, packed
// into one opaque, URL-safe token that is the stream's SSE event id and
// comes back as Last-Event-ID.
//
// Layout, before unpadded base64url:
//
//	header   3 bytes: version 1, mode (0 checksum, 1 HMAC), entry count n
//	entries  n × 24 bytes: room hash, epoch, seq; 8 bytes each, big-endian
//	trailer  4 bytes CRC-32C, or 12 bytes HMAC-SHA256, of header and entries
//
// An entry names its room by the first 8 bytes of SHA-256 of the room id,
// not by the id: ids are up to 128 characters, so names would make a
// 50-room token about 9 KiB, while hashes keep it at 1,620 characters
// (HMAC; 1,610 with the checksum) whatever the ids. A client that changes its set of rooms sends its
// last token with the new list; each listed room finds its entry by hash,
// so carried-over rooms resume exactly and the others start live. Two
// listed rooms with the same 64-bit hash would share a position; at 50
// rooms the chance is about 2^-53.
//
// The epoch is the base-36 number of the chat.ID epoch (at most 12
// digits, so it fits 64 bits; 0 for a room without messages). Entries of
// fixed width that are a multiple of 3 bytes each encode to their own 32
// characters, so updating one room's position re-encodes only its entry and
// the trailer (see Encoder).
//
// A checksum catches a truncated or damaged token. Without a key anyone can
// build a valid token, which grants nothing: every room is still checked
// for read permission, and a position is only a place to resume from, as a
// Last-Event-ID of a single-room stream is. With a key (the setting
// CURSOR_KEY, shared by every instance) a token not made by the deployment
// is refused.
package cursor

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"strconv"

	"roomcast/broker/chat"
)

const (
	version    = 1
	headerLen  = 3
	entryLen   = 24
	entryChars = entryLen / 3 * 4
	crcLen     = 4
	macLen     = 12

	modeChecksum = 0
	modeHMAC     = 1

	// MaxRooms is the most rooms a token holds.
	MaxRooms = 127
	// MaxLen is the longest token Decode accepts; a token of MaxRooms rooms
	// fits.
	MaxLen = 4096

	maxEpoch = 4738381338321616895 // 36^12 - 1: the largest 12-digit base-36 epoch
	maxSeq   = 1<<53 - 1
)

// ErrInvalid is wrapped by every error of Decode: the token is not one that
// an Encoder of this deployment made.
var ErrInvalid = errors.New("invalid cursor")

var (
	encoding = base64.RawURLEncoding.Strict()
	castagn  = crc32.MakeTable(crc32.Castagnoli)
)

// Codec makes and reads tokens. The zero Codec uses a checksum; one with a
// key signs tokens with HMAC-SHA256, and refuses tokens not signed with the
// same key. It is safe for concurrent use.
type Codec struct {
	key []byte
}

// NewCodec returns a Codec that signs with key, or checksums when key is
// empty. Every instance of a deployment must use the same key.
func NewCodec(key []byte) Codec { return Codec{key: append([]byte(nil), key...)} }

// Position is a room's position in a token.
type Position struct {
	ID    chat.ID
	Known bool // false: the token has no entry for the room
}

// RoomHash is the 64-bit name of room in tokens.
func RoomHash(room string) uint64 {
	sum := sha256.Sum256([]byte(room))
	return binary.BigEndian.Uint64(sum[:8])
}

// Encoder holds the positions of one stream's rooms and their token. Set
// changes one room's position at the cost of one entry and the trailer. An
// Encoder is not safe for concurrent use.
type Encoder struct {
	codec Codec
	bin   []byte    // header and entries
	text  []byte    // base64 of bin, then of the trailer
	mac   hash.Hash // nil without a key; reused for every token
	sum   [sha256.Size]byte
}

// NewEncoder returns an Encoder for rooms (at most MaxRooms, without
// duplicates), each at the position of the same index in start.
func (c Codec) NewEncoder(rooms []string, start []chat.ID) (*Encoder, error) {
	if len(rooms) == 0 || len(rooms) > MaxRooms || len(start) != len(rooms) {
		return nil, fmt.Errorf("cursor: %d rooms and %d positions; want 1 to %d of each", len(rooms), len(start), MaxRooms)
	}
	e := &Encoder{codec: c, bin: make([]byte, headerLen+entryLen*len(rooms))}
	if len(c.key) > 0 {
		e.mac = hmac.New(sha256.New, c.key)
	}
	e.bin[0], e.bin[1], e.bin[2] = version, c.mode(), byte(len(rooms))
	seen := make(map[uint64]bool, len(rooms))
	for i, room := range rooms {
		h := RoomHash(room)
		if seen[h] {
			return nil, fmt.Errorf("cursor: room %q given twice", room)
		}
		seen[h] = true
		binary.BigEndian.PutUint64(e.bin[headerLen+entryLen*i:], h)
		if err := e.put(i, start[i]); err != nil {
			return nil, err
		}
	}
	e.text = make([]byte, encoding.EncodedLen(len(e.bin)), encoding.EncodedLen(len(e.bin))+encoding.EncodedLen(macLen))
	encoding.Encode(e.text, e.bin)
	e.seal()
	return e, nil
}

// Set moves room i (its index in the rooms given to NewEncoder) to id. An
// id whose epoch is not a redisscripts epoch is an error, and leaves the
// token as it was.
func (e *Encoder) Set(i int, id chat.ID) error {
	if i < 0 || i >= int(e.bin[2]) {
		return fmt.Errorf("cursor: room index %d out of range", i)
	}
	if err := e.put(i, id); err != nil {
		return err
	}
	off := headerLen + entryLen*i
	encoding.Encode(e.text[4+entryChars*i:], e.bin[off:off+entryLen])
	e.seal()
	return nil
}

// Token returns the token of the current positions.
func (e *Encoder) Token() string { return string(e.text) }

// AppendToken appends the token to dst, for writing it into a frame
// without an extra copy.
func (e *Encoder) AppendToken(dst []byte) []byte { return append(dst, e.text...) }

func (e *Encoder) put(i int, id chat.ID) error {
	epoch, err := epochNumber(id.Epoch)
	if err != nil || id.Seq < 0 || id.Seq > maxSeq || (epoch == 0 && id.Seq != 0) {
		return fmt.Errorf("cursor: position %q cannot be encoded", id.String())
	}
	off := headerLen + entryLen*i + 8
	binary.BigEndian.PutUint64(e.bin[off:], epoch)
	binary.BigEndian.PutUint64(e.bin[off+8:], uint64(id.Seq))
	return nil
}

// seal writes the trailer after the entries' text.
func (e *Encoder) seal() {
	var n []byte
	if e.mac == nil {
		n = binary.BigEndian.AppendUint32(e.sum[:0], crc32.Checksum(e.bin, castagn))
	} else {
		e.mac.Reset()
		e.mac.Write(e.bin)
		n = e.mac.Sum(e.sum[:0])[:macLen]
	}
	e.text = e.text[:encoding.EncodedLen(len(e.bin))]
	start := len(e.text)
	e.text = e.text[:start+encoding.EncodedLen(len(n))]
	encoding.Encode(e.text[start:], n)
}

func (c Codec) mode() byte {
	if len(c.key) > 0 {
		return modeHMAC
	}
	return modeChecksum
}

// sum appends the trailer of data to dst, as Encoder.seal makes it.
func (c Codec) sum(dst, data []byte) []byte {
	if len(c.key) == 0 {
		return binary.BigEndian.AppendUint32(dst, crc32.Checksum(data, castagn))
	}
	mac := hmac.New(sha256.New, c.key)
	mac.Write(data)
	return mac.Sum(dst)[:len(dst)+macLen]
}

func (c Codec) trailerLen() int {
	if len(c.key) == 0 {
		return crcLen
	}
	return macLen
}

// Decode reads token and returns the position it holds for each of rooms,
// in the same order; rooms it has no entry for are not Known. Every error
// wraps ErrInvalid; a token is either wholly valid or refused.
func (c Codec) Decode(token string, rooms []string) ([]Position, error) {
	entries, err := c.entries(token)
	if err != nil {
		return nil, err
	}
	out := make([]Position, len(rooms))
	for i, room := range rooms {
		out[i].ID, out[i].Known = entries[RoomHash(room)]
	}
	return out, nil
}

// entries checks token and returns its positions by room hash.
func (c Codec) entries(token string) (map[uint64]chat.ID, error) {
	invalid := func(why string) error { return fmt.Errorf("%w: %s", ErrInvalid, why) }
	if len(token) > MaxLen {
		return nil, invalid("too long")
	}
	bin, err := encoding.DecodeString(token)
	if err != nil || !urlSafe(token) {
		return nil, invalid("not base64url")
	}
	if len(bin) < headerLen || bin[0] != version {
		return nil, invalid("unknown version")
	}
	if bin[1] != c.mode() {
		return nil, invalid("not signed as this server signs")
	}
	n := int(bin[2])
	body := headerLen + entryLen*n
	if n == 0 || n > MaxRooms || len(bin) != body+c.trailerLen() {
		return nil, invalid("wrong length")
	}
	want := c.sum(make([]byte, 0, macLen), bin[:body])
	if !hmac.Equal(want, bin[body:]) {
		return nil, invalid("checksum mismatch")
	}
	entries := make(map[uint64]chat.ID, n)
	for i := range n {
		e := bin[headerLen+entryLen*i:]
		h := binary.BigEndian.Uint64(e)
		epoch, seq := binary.BigEndian.Uint64(e[8:]), binary.BigEndian.Uint64(e[16:])
		if _, dup := entries[h]; dup {
			return nil, invalid("a room appears twice")
		}
		if epoch > maxEpoch || seq > maxSeq || (epoch == 0 && seq != 0) {
			return nil, invalid("position out of range")
		}
		id := chat.ID{Seq: int64(seq)}
		if epoch != 0 {
			id.Epoch = strconv.FormatUint(epoch, 36)
		}
		entries[h] = id
	}
	return entries, nil
}

// epochNumber is the value of a base-36 epoch; 0 for "".
func epochNumber(epoch string) (uint64, error) {
	if epoch == "" {
		return 0, nil
	}
	if len(epoch) > 12 || epoch[0] == '0' {
		return 0, errors.New("not an epoch")
	}
	var n uint64
	for i := range len(epoch) {
		c := epoch[i]
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'z':
			d = uint64(c-'a') + 10
		default:
			return 0, errors.New("not an epoch")
		}
		n = n*36 + d
	}
	return n, nil
}

// urlSafe reports whether s holds only base64url characters; the decoder
// itself skips line breaks.
func urlSafe(s string) bool {
	for i := range len(s) {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}
