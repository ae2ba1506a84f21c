package chat

import (
	"errors"
	"strconv"
	"strings"
)

// ErrInvalidID is returned by ParseID for text that is not a message id.
var ErrInvalidID = errors.New("invalid message id")

// maxSeq keeps sequence numbers exact in Lua, whose numbers are doubles.
const maxSeq = 1<<53 - 1

// ID identifies a message: the room's epoch, which changes whenever Redis
// lost the room's state, and the message's sequence number in that epoch.
// Its text form "<epoch>-<seq>" is the history cursor and the SSE event id.
type ID struct {
	Epoch string // base-36 time of the epoch's start in microseconds
	Seq   int64  // 1, 2, 3… within the epoch
}

// String returns the id's text form.
func (id ID) String() string { return id.Epoch + "-" + strconv.FormatInt(id.Seq, 10) }

// ParseID parses the text form of an id. It returns ErrInvalidID for
// anything ID.String could not have produced.
func ParseID(s string) (ID, error) {
	epoch, seqText, ok := strings.Cut(s, "-")
	if !ok || !validEpoch(epoch) || len(seqText) == 0 || len(seqText) > 16 || seqText[0] < '1' || seqText[0] > '9' {
		return ID{}, ErrInvalidID
	}
	seq, err := strconv.ParseInt(seqText, 10, 64)
	if err != nil || seq < 1 || seq > maxSeq {
		return ID{}, ErrInvalidID
	}
	return ID{Epoch: epoch, Seq: seq}, nil
}

func validEpoch(s string) bool {
	if len(s) == 0 || len(s) > 12 || s[0] == '0' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// Follows reports whether id is the message directly after prev: the next
// sequence number of the same epoch, or the first message of a room whose
// position prev was taken before it had any message (zero Epoch).
func (id ID) Follows(prev ID) bool {
	if prev.Epoch == "" {
		return id.Seq == 1
	}
	return id.Epoch == prev.Epoch && id.Seq == prev.Seq+1
}

// Covered reports whether a reader positioned at pos has already seen id:
// same epoch, sequence number not after pos.
func (id ID) Covered(pos ID) bool { return id.Epoch == pos.Epoch && id.Seq <= pos.Seq }

// IDOf returns the id of a message in the JSON form the post script writes,
// without decoding the whole message.
func IDOf(message []byte) (ID, error) {
	const head = `{"id":"`
	if len(message) < len(head) || string(message[:len(head)]) != head {
		return ID{}, ErrInvalidID
	}
	rest := message[len(head):]
	for i, c := range rest {
		if c == '"' {
			return ParseID(string(rest[:i]))
		}
		if i > 40 {
			break
		}
	}
	return ID{}, ErrInvalidID
}
