// The wallet: its balance, a top-up, and the ledger (top-ups, charges and
// refunds, newest first). Refunds arrive by event after a cancellation, so
// the page polls the balance and the ledger's first page.
//
// A top-up's idempotency key belongs to one click; only a retry of that
// click after a lost answer sends it again (the same rule as orders).

import { newKey, request } from "./api.js";
import { announce, clearProblem, field, h, money, showProblem, when } from "./ui.js";

const KIND = { top_up: "Top-up", charge: "Charge", refund: "Refund" };

/** `#/wallet` */
export function wallet(main) {
  const balance = h("p", { class: "balance", id: "balance" }, "…");
  const amount = h("input", { name: "amount", id: "f-amount", type: "number", min: "0.01", max: "10000", step: "0.01",
    inputmode: "decimal", required: true, "data-field": "amount_cents", value: "50.00" });
  const form = h("form", { novalidate: true, "aria-labelledby": "topup-title" },
    field("Amount in euros", amount, "From €0.01 to €10,000.00"),
    h("button", { type: "submit" }, "Top up"));
  const ledger = h("tbody", { id: "ledger" });
  const more = h("button", { type: "button", hidden: true }, "Show older entries");
  main.append(h("h1", { id: "page-title", tabindex: "-1" }, "Wallet"),
    h("section", { "aria-labelledby": "balance-title" }, h("h2", { id: "balance-title" }, "Balance"), balance),
    h("section", { "aria-labelledby": "topup-title" }, h("h2", { id: "topup-title" }, "Top up"), form),
    h("section", { "aria-labelledby": "ledger-title" }, h("h2", { id: "ledger-title" }, "Ledger"),
      h("table", { class: "ledger" },
        h("thead", null, h("tr", null, ...["When", "Kind", "Amount", "Order"].map((t) =>
          h("th", { scope: "col", class: t === "Amount" ? "num" : null }, t)))),
        ledger),
      more));

  let intent = null;
  let cursor = null;
  /** @type {any[]} */
  let older = [];
  let firstPage = "";

  function entry(e) {
    return h("tr", { "data-kind": e.kind },
      h("td", null, when(e.created_at)), h("td", null, KIND[e.kind] ?? e.kind),
      h("td", { class: `num ${e.kind}` }, `${e.kind === "charge" ? "−" : "+"}${money(e.amount_cents)}`),
      h("td", null, e.order_id ? h("code", null, e.order_id.slice(-8)) : "—"));
  }

  async function load(quiet) {
    const [w, p] = await Promise.all([
      request("GET", "/v1/wallet", { auth: true, quiet }),
      request("GET", "/v1/payments?limit=20", { auth: true, quiet }),
    ]);
    if (w.ok) balance.textContent = money(w.body.balance_cents);
    else if (!quiet) announce(w.problem?.title ?? "Could not load the wallet", w, "error");
    if (!p.ok) return;
    const signature = p.body.items.map((e) => e.id).join();
    if (signature !== firstPage) {
      firstPage = signature;
      const fresh = p.body.items;
      ledger.replaceChildren(...[...fresh, ...older.filter((o) => !fresh.some((f) => f.id === o.id))].map(entry));
      if (!older.length) cursor = p.body.next_cursor;
      more.hidden = !cursor;
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = /** @type {HTMLButtonElement} */ (form.querySelector("button[type=submit]"));
    if (button.disabled) return;
    clearProblem(form);
    const euros = Number(amount.value);
    const body = { amount_cents: Number.isFinite(euros) && amount.value.trim() !== "" ? Math.round(euros * 100) : amount.value };
    const text = JSON.stringify(body);
    if (!intent || intent.body !== text) intent = { key: newKey(), body: text };
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    const answer = await request("POST", "/v1/wallet/top-ups", { body, auth: true, key: intent.key });
    button.disabled = false;
    form.removeAttribute("aria-busy");
    if (answer.status !== 0 && answer.status !== 409) intent = null;
    if (!answer.ok) return showProblem(form, answer);
    balance.textContent = money(answer.body.balance_cents);
    announce(`Topped up ${money(answer.body.amount_cents)}; balance ${money(answer.body.balance_cents)}.`, answer);
    await load(true);
  });

  more.addEventListener("click", async () => {
    const answer = await request("GET", `/v1/payments?limit=20&cursor=${encodeURIComponent(cursor)}`, { auth: true });
    if (!answer.ok) return announce(answer.problem?.title ?? "Could not load the ledger", answer, "error");
    older = [...older, ...answer.body.items];
    ledger.append(...answer.body.items.map(entry));
    cursor = answer.body.next_cursor;
    more.hidden = !cursor;
  });

  load(false);
  const timer = setInterval(() => document.hidden || load(true), 2000);
  return () => clearInterval(timer);
}
