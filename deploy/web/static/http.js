// One HTTP request to the API, measured: everything the request log and the replica strip show.
//
// The page is served by nginx from the same address as the API, so these are same-origin
// requests: no CORS, and the browser attaches the session cookie to /sapi/ calls by itself.

/**
 * Sends `method path`, with a JSON body (`json`) and/or a bearer token (`bearer`), and resolves
 * to { method, path, status, replica, issuer, body, ms, sent }. Never rejects: a network failure is
 * status 0, so callers handle one kind of answer.
 */
export async function send(method, path, { json, bearer } = {}) {
  const headers = {};
  const sent = [];
  if (json !== undefined) {
    headers['content-type'] = 'application/json';
  }
  if (bearer) {
    headers.authorization = `Bearer ${bearer}`;
    sent.push(`Authorization: Bearer ${bearer.slice(0, 16)}… (${bearer.length} characters)`);
  }
  if (path.startsWith('/sapi/') || path === '/auth/session/logout') {
    sent.push('Cookie: sid=… (added by the browser if it holds one; this page cannot see it)');
  }
  const started = performance.now();
  const result = { method, path, status: 0, replica: null, issuer: null, body: null, ms: 0, sent };
  try {
    const response = await fetch(path, {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
      credentials: 'same-origin',
      cache: 'no-store',
    });
    result.status = response.status;
    result.replica = response.headers.get('x-replica');
    result.issuer = response.headers.get('x-issuer');
    result.body = parseBody(await response.text());
  } catch (error) {
    result.body = { error: 'network_error', error_description: String(error) };
  }
  result.ms = Math.round(performance.now() - started);
  return result;
}

function parseBody(text) {
  if (text === '') {
    return null;
  }
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** "invalid_grant: <description>" from a JSON error body, or "". */
export function errorText(result) {
  const body = result.body;
  if (body && typeof body === 'object' && body.error) {
    return body.error_description ? `${body.error}: ${body.error_description}` : body.error;
  }
  return '';
}
