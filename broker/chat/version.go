package chat

import "bytes"

// VersionOf returns the version of a message in the JSON form the store
// writes (1 when posted, one more per edit and for the delete). A message
// stored before messages had versions has none: it is version 1, as the
// change scripts take it; 0 is for data that is no message. The first `,"version":` is the member: no string literal
// before it can hold `,"` (a quote inside a literal is escaped), and the
// metadata, which may hold anything, comes after it.
func VersionOf(data []byte) int64 {
	i := bytes.Index(data, []byte(`,"version":`))
	if i < 0 {
		if len(data) == 0 {
			return 0
		}
		return 1
	}
	var v int64
	for _, c := range data[i+len(`,"version":`):] {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int64(c-'0')
	}
	return v
}
