// Small DOM helpers shared by the pages: element building (text only, never
// HTML from the server), money, the live status line, problems shown on
// forms, and the request log with each request's trace id.

/** Settings the edge serves at /shop/config.json. */
export const config = { jaegerUrl: "" };

/** Reads /shop/config.json; without it the shop runs without trace links. */
export async function loadConfig() {
  try {
    const res = await fetch("config.json", { cache: "no-store" });
    if (res.ok) {
      const json = await res.json();
      config.jaegerUrl = typeof json.jaeger_url === "string" ? json.jaeger_url.replace(/\/+$/, "") : "";
    }
  } catch {
    config.jaegerUrl = "";
  }
}

/**
 * `h("button", {type: "submit", onclick: f}, "Pay")`: an element with
 * attributes, event handlers (`on…`) and children (strings become text).
 * @param {string} tag
 * @param {Record<string, any> | null} [props]
 * @param {...(Node | string | number | null | undefined | false | Array<any>)} children
 * @returns {HTMLElement}
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name in el && typeof value !== "string") /** @type {any} */ (el)[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

const euros = new Intl.NumberFormat("en-IE", { style: "currency", currency: "EUR" });

/** 1890 → "€18.90". */
export function money(cents) {
  return euros.format(cents / 100);
}

/** An RFC 3339 time as the reader's local date and time. */
export function when(rfc3339) {
  return new Date(rfc3339).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "medium" });
}

/** The trace id, linked to Jaeger when the edge names one. */
export function traceRef(traceId) {
  if (!traceId) return h("span", { class: "trace" }, "no trace id");
  const id = h("code", null, traceId);
  return h("span", { class: "trace" }, "trace ",
    config.jaegerUrl
      ? h("a", { href: `${config.jaegerUrl}/trace/${traceId}`, target: "_blank", rel: "noopener",
                 "data-trace-id": traceId, title: "Open this trace in Jaeger" }, id)
      : h("span", { "data-trace-id": traceId }, id));
}

/**
 * Says what just happened in the page's live region (read out by screen
 * readers), with the trace of the request that did it.
 * @param {string} text
 * @param {import("./api.js").Answer | null} [answer]
 * @param {"ok" | "error" | "info"} [tone]
 */
export function announce(text, answer = null, tone = "ok") {
  const status = document.getElementById("status");
  if (!status) return;
  status.className = `status ${tone}`;
  status.replaceChildren(h("span", { class: "message" }, text), ...(answer ? [" · ", traceRef(answer.traceId)] : []));
}

/** `title: detail` of a problem. */
export function describe(problem) {
  return problem.detail ? `${problem.title}: ${problem.detail}` : problem.title;
}

/** Removes a form's problem summary and field messages. */
export function clearProblem(form) {
  form.querySelector(".problem")?.remove();
  for (const el of form.querySelectorAll("[aria-invalid]")) {
    el.removeAttribute("aria-invalid");
    if (el instanceof HTMLElement && el.dataset.hint) el.setAttribute("aria-describedby", el.dataset.hint);
    else el.removeAttribute("aria-describedby");
  }
  for (const el of form.querySelectorAll(".field-error")) el.remove();
}

/**
 * Shows a problem on `form`: its title and detail in a summary at the top
 * (an alert), each field error under its field (matched by `data-field`,
 * the API's field path, or `name`), focus on the first field in error.
 * @param {HTMLFormElement} form
 * @param {import("./api.js").Answer} answer
 */
export function showProblem(form, answer) {
  clearProblem(form);
  const problem = /** @type {import("./api.js").Problem} */ (answer.problem);
  const unmatched = [];
  let first = null;
  for (const error of problem.errors ?? []) {
    const input = form.querySelector(`[data-field="${CSS.escape(error.field)}"]`)
      ?? form.querySelector(`[name="${CSS.escape(error.field)}"]`);
    if (!(input instanceof HTMLElement)) {
      unmatched.push(error);
      continue;
    }
    const id = `${input.id}-error`;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", [input.dataset.hint, id].filter(Boolean).join(" "));
    input.closest(".field")?.append(h("p", { class: "field-error", id }, error.message));
    first ??= input;
  }
  const summary = h("div", { class: "problem", role: "alert", tabindex: "-1" },
    h("p", { class: "problem-title" }, h("strong", null, problem.title), problem.detail ? ` ${problem.detail}` : null),
    unmatched.length ? h("ul", null, unmatched.map((e) => h("li", null, `${e.field}: ${e.message}`))) : null,
    h("p", { class: "problem-meta" }, `${answer.status || "no answer"} ${problem.code}`, " · ", traceRef(answer.traceId)));
  form.prepend(summary);
  (first ?? summary).focus();
  announce(describe(problem), answer, "error");
}

/** Adds one answer to the request log (newest first, the last twelve). */
export function logAnswer(answer) {
  const list = document.getElementById("log");
  if (!list) return;
  const tone = answer.ok ? "ok" : "error";
  list.prepend(h("li", { class: tone },
    h("span", { class: "req" }, `${answer.method} ${answer.path}`), " ",
    h("span", { class: "code" }, `${answer.status || "—"}${answer.replayed ? " (replayed)" : ""}`), " ",
    traceRef(answer.traceId)));
  while (list.children.length > 12) list.lastElementChild?.remove();
}

/**
 * A labelled form field: `<div class=field><label>…</label><input …></div>`.
 * `hint` is read out with the field.
 */
export function field(label, input, hint) {
  input.id ||= `f-${input.getAttribute("name") ?? Math.random().toString(36).slice(2)}`;
  const hintEl = hint ? h("p", { class: "hint", id: `${input.id}-hint` }, hint) : null;
  if (hintEl) {
    input.dataset.hint = hintEl.id;
    input.setAttribute("aria-describedby", hintEl.id);
  }
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input, hintEl);
}
