// The rules the server applies to what the page sends, checked here too so
// that the page refuses at once what the server would refuse.

export const ROOM_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
export const MAX_NAME_CHARS = 64;

// isBlank reports whether text is nothing but white space: the characters
// of Unicode's White_Space property, the set Go's unicode.IsSpace (and so
// the server's strings.TrimSpace) trims. String.prototype.trim differs (it
// trims U+FEFF and keeps U+0085), so it is not used here.
export function isBlank(text) {
  return /^\p{White_Space}*$/u.test(text);
}
