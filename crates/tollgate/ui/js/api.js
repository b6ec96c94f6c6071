// Talking to the gateway: the admin API on this origin, the data plane
// (playground) at the URL /admin/ui/settings names. The credential lives in
// sessionStorage: it survives a reload of the tab, never the tab itself.

const STORE = 'tollgate.credential';

export const session = {
  get credential() { return sessionStorage.getItem(STORE); },
  set(credential) { sessionStorage.setItem(STORE, credential); },
  clear() { sessionStorage.removeItem(STORE); session.settings = null; },
  /** What /admin/ui/settings said about the signed-in caller. */
  settings: null,
};

/** An answer that was not 2xx, with the gateway's error code and message. */
export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || null;
    this.errors = (body && body.errors) || [];
  }
}

async function parse(resp) {
  const type = resp.headers.get('content-type') || '';
  if (type.includes('application/json')) return resp.json();
  const text = await resp.text();
  return { error: { message: text.trim() || resp.statusText } };
}

function authHeaders(extra = {}) {
  return { authorization: `Bearer ${session.credential}`, ...extra };
}

/** Calls an admin route; resolves to the parsed JSON, rejects with ApiError. */
export async function admin(path, { method = 'GET', body, raw = false } = {}) {
  const resp = await fetch(path, {
    method,
    headers: authHeaders(body === undefined ? {} : { 'content-type': 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  if (!resp.ok) throw new ApiError(resp.status, await parse(resp));
  return raw ? resp : resp.json();
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Checks a credential and learns who it is; throws ApiError when refused. */
export async function signIn(credential) {
  session.set(credential);
  try {
    session.settings = await admin('/admin/ui/settings');
  } catch (e) {
    session.clear();
    throw e;
  }
  return session.settings;
}

/** A data-plane request (the playground), with the signed-in credential. */
export function data(path, { method = 'GET', body, signal } = {}) {
  return fetch(session.settings.data_url + path, {
    method,
    headers: authHeaders(body === undefined ? {} : { 'content-type': 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
}

export { parse as parseBody };
