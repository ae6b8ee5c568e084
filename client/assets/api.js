// Shared by the pages: HTTP with retries, client-minted ids, safe DOM.

/** An answer from the API: status, parsed JSON body (or null), headers. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code ?? 'http_error';
  }
}

/**
 * The region this page's address names (`/r/{region}/…`), as the share
 * links of a deployment of several regions do; `null` for a plain path.
 * Requests go to the same region's path, so the one address (the CDN) sends
 * them straight to it.
 */
export function regionOf(path) {
  const match = /^\/r\/([a-z0-9-]{1,40})(?:\/|$)/.exec(path);
  return match ? match[1] : null;
}

/** The path prefix of requests for `region` (none for `null`). */
export function regionBase(region) {
  return region ? `/r/${region}` : '';
}

/**
 * The event id and the page after it (`host`, `present`, or none) of an
 * event page's path, under a region's prefix or not.
 */
export function eventPage(path) {
  const [id, part] = path.slice(regionBase(regionOf(path)).length).split('/').slice(2);
  return { id, part };
}

/** An event's guest link as it is shared: absolute, under `region`'s path. */
export function guestLink(region, eventId) {
  return `${location.origin}${regionBase(region)}/event/${eventId}`;
}

/** The address of a QR code of `text`, drawn by `region`'s API. */
export function qrCode(region, text) {
  return `${regionBase(region)}/api/qr?text=${encodeURIComponent(text)}`;
}

/** True for failures worth retrying: the network, 429 and 503. */
export function retryable(error) {
  return !(error instanceof ApiError) || error.status === 429 || error.status === 503;
}

/**
 * Why a request failed, in words for people (never the browser's "Failed to
 * fetch"), to follow "Your vote was not counted: " and the like.
 */
export function failureText(error) {
  if (!(error instanceof ApiError)) {
    return navigator.onLine === false ? 'you are offline' : 'no connection to openfloor; check your network';
  }
  // A no-break space: "2 s" never splits over two lines.
  if (error.status === 429) return `too many requests; wait ${Math.max(1, error.retryAfter || 1)}\u00a0s`;
  if (error.status === 503) return 'openfloor is busy for a moment';
  return error.message;
}

/** "Too many requests…": `failureText` as a sentence's start. */
export function failureSentence(error) {
  const text = failureText(error);
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * One request. `secret` goes in the Authorization header (never the URL);
 * `etag` makes a conditional GET (a 304 answers `{notModified: true}`).
 */
export async function request(method, path, { body, secret, etag } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (secret) headers['Authorization'] = `Bearer ${secret}`;
  if (etag) headers['If-None-Match'] = etag;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-cache',
  });
  // After a redirect, `url` says where the request was answered.
  // `viewAge`: how old the host's view is by the server's clock (ms; null if not said).
  const age = response.headers.get('X-View-Age-Ms');
  const viewAge = age === null || age === '' || !Number.isFinite(Number(age)) ? null : Number(age);
  if (response.status === 304) return { notModified: true, etag, url: response.url, viewAge };
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!response.ok) {
    const error = new ApiError(response.status, json);
    error.retryAfter = Number(response.headers.get('Retry-After')) || 0;
    throw error;
  }
  return { json, etag: response.headers.get('ETag'), status: response.status, url: response.url, viewAge };
}

/**
 * Waits `ms`, or less: coming back online ends the wait, since what failed
 * offline is worth trying again at once.
 */
const sleep = (ms) => new Promise((resolve) => {
  const done = () => {
    clearTimeout(timer);
    globalThis.removeEventListener?.('online', done);
    resolve();
  };
  const timer = setTimeout(done, ms);
  globalThis.addEventListener?.('online', done);
});

/**
 * Runs `attempt` until it succeeds, retrying retryable failures with
 * exponential backoff (honouring Retry-After) up to `tries` times.
 * `onRetry(error, waitMs, tryNumber)` lets the page say what is happening.
 */
export async function withRetry(attempt, { tries = 4, onRetry = () => {} } = {}) {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i >= tries || !retryable(error)) throw error;
      const wait = Math.max((error.retryAfter || 0) * 1000, 500 * 2 ** (i - 1));
      onRetry(error, wait, i);
      await sleep(wait);
    }
  }
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A ULID: 48 bits of milliseconds, 80 random bits, Crockford base32. */
export function ulid(now = Date.now()) {
  let time = '';
  for (let i = 0, t = now; i < 10; i++, t = Math.floor(t / 32)) time = CROCKFORD[t % 32] + time;
  const random = new Uint8Array(16);
  crypto.getRandomValues(random);
  let rest = '';
  for (let i = 0; i < 16; i++) rest += CROCKFORD[random[i] % 32];
  return time + rest;
}

/**
 * Builds an element. Children that are strings become text nodes, so user
 * text is never parsed as HTML.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
  return node;
}

/** "just now", "5 s ago", "3 min ago". */
/** Like `ago`, with tenths of a second below ten seconds ("0.4 s ago"). */
export function agoPrecisely(ms) {
  if (ms < 9950) return `${(Math.max(0, ms) / 1000).toFixed(1)} s ago`;
  return ago(ms);
}

export function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 2) return 'just now';
  if (s < 90) return `${s} s ago`;
  return `${Math.round(s / 60)} min ago`;
}

/** Reads and writes a JSON value in localStorage, tolerating a full or disabled store. */
export const stored = {
  get(key, fallback) {
    try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch { return fallback; }
  },
  set(key, value) {
    try { localStorage.setItem(key, JSON.stringify(value)); } catch { /* private mode: keep going */ }
  },
};

/**
 * The events this browser hosts, newest first: the host link is the only
 * key to an event, so the home page lists them, and neither a reload nor a
 * closed tab loses it. Kept in this browser only, never sent anywhere.
 */
export const myEvents = {
  key: 'openfloor:my-events',
  /** The most recently opened are kept; the home page says when one went. */
  kept: 100,
  list() {
    const events = stored.get(myEvents.key, []);
    return Array.isArray(events) ? events.filter((e) => e && e.id && e.host) : [];
  },
  /** Remembers `event` ({id, title, guest, host}) first in the list. */
  remember(event) {
    const others = myEvents.list().filter((e) => e.id !== event.id);
    stored.set(myEvents.key, [event, ...others].slice(0, myEvents.kept));
  },
  forget(id) {
    stored.set(myEvents.key, myEvents.list().filter((e) => e.id !== id));
  },
};

/** What this browser keeps per event, by key prefix (`PREFIX:{event id}`). */
const PER_EVENT_KEYS = ['openfloor:votes', 'openfloor:pending', 'openfloor:mine', 'openfloor:draft'];
/** Events whose keys are kept: the most recently opened. */
const EVENTS_KEPT = 50;

/**
 * Notes that `event` was opened now, and drops what this browser keeps
 * for the events opened longest ago beyond the last EVENTS_KEPT, so
 * local storage does not grow with every event ever joined. (A pending
 * question of such an event is dropped too: by then its event is long over.)
 */
export function touchEvent(event) {
  const opened = stored.get('openfloor:opened', []);
  const recent = [event, ...(Array.isArray(opened) ? opened : []).filter((id) => id !== event)];
  for (const old of recent.slice(EVENTS_KEPT)) {
    for (const prefix of PER_EVENT_KEYS) {
      try { localStorage.removeItem(`${prefix}:${old}`); } catch { /* private mode */ }
    }
  }
  stored.set('openfloor:opened', recent.slice(0, EVENTS_KEPT));
}

/** "vote" or "votes", as `n` needs. */
export function voteWord(n) {
  return n === 1 ? 'vote' : 'votes';
}

/** "1 vote", "2 votes". */
export function votesLabel(n) {
  return `${n} ${voteWord(n)}`;
}
