// Reading a sign-in token, for display only: the server checks the
// signature, and the page trusts nothing in it.

// tokenClaims decodes a JWT's payload. It returns null for what is not a
// JWT.
export function tokenClaims(token) {
  const part = token.split('.')[1];
  if (!part) {
    return null;
  }
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

// tokenSubject is the sub of a token, the user the server posts as, or ''.
export function tokenSubject(token) {
  const claims = tokenClaims(token);
  return claims && typeof claims.sub === 'string' ? claims.sub : '';
}
