package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
)

// MinAPIKeyBytes is the shortest server API key: 256 bits, as for HS256
// keys (RFC 7518, section 3.2).
const MinAPIKeyBytes = 32

// APIKeys are the server API keys (SERVER_API_KEYS) of a deployment. The
// zero value holds none and matches nothing. It keeps only the keys'
// SHA-256 digests, so that no key sits in memory where a dump or an error
// message could show it.
type APIKeys struct {
	digests [][sha256.Size]byte
}

// ParseAPIKeys takes the keys of a comma-separated list, already split at
// the commas: white space around an entry is dropped, and empty entries
// are skipped. A key shorter than MinAPIKeyBytes is an error that names its
// position and length, never its value.
func ParseAPIKeys(list []string) (APIKeys, error) {
	var keys APIKeys
	for _, k := range list {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if len(k) < MinAPIKeyBytes {
			return APIKeys{}, fmt.Errorf("key %d is %d bytes: want at least %d", len(keys.digests)+1, len(k), MinAPIKeyBytes)
		}
		keys.digests = append(keys.digests, sha256.Sum256([]byte(k)))
	}
	return keys, nil
}

// Len is the number of keys.
func (k APIKeys) Len() int { return len(k.digests) }

// Match reports which key presented is, counted from 1; 0 when it is none
// of them. Its time does not depend on which key matched or on how much of
// one did: it compares digests in constant time, with every key.
func (k APIKeys) Match(presented string) int {
	sum := sha256.Sum256([]byte(presented))
	found := 0
	for i, d := range k.digests {
		found = subtle.ConstantTimeSelect(subtle.ConstantTimeCompare(sum[:], d[:]), i+1, found)
	}
	return found
}

// ServerClaims are the claims of a request made with the key at position
// index (counted from 1): no subject and no expiry, every permission on
// every room (AllRooms), and Key set.
func ServerClaims(index int) Claims {
	return Claims{Rooms: AllRooms(), Key: index}
}
