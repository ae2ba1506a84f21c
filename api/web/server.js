// Requests to roomcast: the bearer token, problem details turned into
// errors, JSON reads and the readiness probe.

// AccessError is a request refused for want of a valid token or
// permission; state is the status it shows: signin, expired or forbidden.
export class AccessError extends Error {
  constructor(state, message) {
    super(message);
    this.state = state;
  }
}

export const accessLabels = { signin: 'sign-in needed', expired: 'token expired', forbidden: 'not allowed in this room' };

// readProblem returns the type, title and detail of a problem response,
// or empty strings.
export async function readProblem(resp) {
  const type = resp.headers.get('Content-Type') || '';
  if (type.includes('json')) {
    try {
      const p = await resp.json();
      return {
        type: typeof p.type === 'string' ? p.type : '',
        title: typeof p.title === 'string' ? p.title : '',
        detail: typeof p.detail === 'string' ? p.detail : '',
      };
    } catch {
      // no usable body
    }
  }
  return { type: '', title: '', detail: '' };
}

// failure turns a failed response into an Error: an AccessError for 401
// and 403, else one describing the problem details.
export async function failure(resp, token) {
  const { type, title, detail } = await readProblem(resp);
  if (resp.status === 401) {
    if (token && type === 'urn:roomcast:problem:token-expired') {
      return new AccessError('expired', 'Your token has expired. Paste a new one and join again.');
    }
    if (token && type === 'urn:roomcast:problem:token-revoked') {
      return new AccessError('signin', 'Your token was revoked. Paste a new one and join again.');
    }
    return new AccessError('signin', token
      ? `Sign-in needed: the server did not accept this token (${detail || 'invalid'}). Paste a valid one and join again.`
      : 'Sign-in needed: this server wants a token. Paste one in the Token field and join again.');
  }
  if (resp.status === 403) {
    return new AccessError('forbidden', `Not allowed in this room${detail ? `: ${detail}` : ''}.`);
  }
  let text = `${resp.status} ${resp.statusText}`.trim();
  if (title) {
    text = detail ? `${title}: ${detail}` : title;
  }
  const after = resp.headers.get('Retry-After');
  if (after) {
    text += ` (retry in ${after} s)`;
  }
  return new Error(text);
}

// authHeaders adds the bearer token, when there is one, to headers.
export function authHeaders(token, headers) {
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

export async function getJSON(url, token) {
  let resp;
  try {
    resp = await fetch(url, { headers: authHeaders(token, { Accept: 'application/json' }) });
  } catch {
    throw new Error('Cannot reach the server.');
  }
  if (!resp.ok) {
    throw await failure(resp, token);
  }
  return resp.json();
}

// probeReady asks the server whether it can serve: true for 200, false
// for 503 or no answer, null for anything else (a proxy may hide /readyz).
export async function probeReady() {
  try {
    const resp = await fetch('/readyz', { cache: 'no-store' });
    if (resp.ok) {
      return true;
    }
    return resp.status === 503 ? false : null;
  } catch {
    return false;
  }
}
