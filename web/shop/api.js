// The storefront's one way to the API: JSON in and out through the edge
// (same origin, so no CORS), the session's token, idempotency keys, and
// what each answer says about itself: its problem (application/problem+json),
// its trace id (`traceresponse`, docs/api.md) and its request id.
//
// Depends on nothing but the browser.

/** Where the token lives: this tab's sessionStorage (see README.md). */
const TOKEN_KEY = "twinshop.token";

/**
 * @typedef {{field: string, message: string}} FieldError
 * @typedef {{type?: string, title: string, status: number, code: string,
 *            detail?: string, errors?: FieldError[]}} Problem
 * @typedef {{method: string, path: string, status: number, ok: boolean,
 *            body: any, problem: Problem | null, traceId: string | null,
 *            requestId: string | null, replayed: boolean, at: Date}} Answer
 */

/** @type {Set<(answer: Answer) => void>} */
const listeners = new Set();

/** Calls `listener` with every answer of a request not sent `quiet`. */
export function onAnswer(listener) {
  listeners.add(listener);
}

/** The session's bearer token, or null when logged out. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Keeps `value` as the session's token; null logs out. */
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** A new idempotency key: one per intent (a click), reused only to retry it. */
export function newKey() {
  return crypto.randomUUID();
}

/** The trace id of a `traceresponse` value (`00-{trace}-{span}-{flags}`). */
export function traceIdOf(header) {
  const match = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(header ?? "");
  return match ? match[1] : null;
}

/**
 * Sends one request and never throws: a network failure is an answer with
 * status 0 and a problem that says so.
 *
 * @param {string} method
 * @param {string} path e.g. `/v1/orders`
 * @param {{body?: unknown, auth?: boolean, key?: string, quiet?: boolean}} [options]
 *   `auth` sends the session's token; `key` is the `Idempotency-Key`;
 *   `quiet` keeps background polls out of the request log.
 * @returns {Promise<Answer>}
 */
export async function request(method, path, options = {}) {
  const headers = { accept: "application/json" };
  if (options.body !== undefined) headers["content-type"] = "application/json";
  if (options.auth && token()) headers.authorization = `Bearer ${token()}`;
  if (options.key) headers["idempotency-key"] = options.key;
  /** @type {Answer} */
  let answer;
  try {
    const res = await fetch(path, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      cache: "no-store",
    });
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    const isProblem = (res.headers.get("content-type") ?? "").startsWith("application/problem+json");
    answer = {
      method,
      path,
      status: res.status,
      ok: res.ok,
      body: res.ok ? body : null,
      problem: res.ok ? null : isProblem && body ? body : unexpected(res.status, res.statusText),
      traceId: traceIdOf(res.headers.get("traceresponse")),
      requestId: res.headers.get("x-request-id"),
      replayed: res.headers.get("idempotent-replayed") === "true",
      at: new Date(),
    };
  } catch (error) {
    answer = {
      method, path, status: 0, ok: false, body: null,
      problem: { title: "No answer", status: 0, code: "network_error",
                 detail: `The shop could not be reached (${error instanceof Error ? error.message : error}).` },
      traceId: null, requestId: null, replayed: false, at: new Date(),
    };
  }
  if (options.auth && answer.status === 401 && answer.problem?.code === "unauthorized" && token()) {
    // Expired or refused token: the session is over.
    setToken(null);
    window.dispatchEvent(new CustomEvent("twinshop:session-ended", { detail: answer }));
  }
  if (!options.quiet) listeners.forEach((listener) => listener(answer));
  return answer;
}

/** A problem for an answer that is not problem+json (a proxy's own error page). */
function unexpected(status, statusText) {
  return { title: statusText || "Unexpected answer", status, code: "unexpected",
           detail: `The shop answered ${status} without a problem description.` };
}
