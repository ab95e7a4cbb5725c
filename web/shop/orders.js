// Your orders, newest first, with their status as events change it: the
// page polls (every second while an order or a refund is pending, every
// five otherwise) and says what changed in the live region.

import { request } from "./api.js";
import { announce, h, money, showProblem, when } from "./ui.js";

const STATUS = {
  pending: "Pending", confirmed: "Confirmed", rejected: "Rejected", failed: "Failed", cancelled: "Cancelled",
};
const REASON = { insufficient_funds: "insufficient funds", payment_unavailable: "payment unavailable" };

/** What a reader should know of an order's state, in words. */
function stateOf(order) {
  let text = STATUS[order.status] ?? order.status;
  if (order.rejection_reason) text += ` (${REASON[order.rejection_reason] ?? order.rejection_reason})`;
  if (order.refund_status === "refunded") text += ", refunded";
  else if (order.refund_status) text += `, refund ${order.refund_status}`;
  return text;
}

const unsettled = (order) => order.status === "pending" || order.refund_status === "pending";

/** `#/orders` */
export function orders(main) {
  const list = h("ol", { class: "orders", id: "orders" });
  const more = h("button", { type: "button", hidden: true }, "Show older orders");
  const form = h("form", { "aria-label": "Orders" }, list, more);
  main.append(h("h1", { id: "page-title", tabindex: "-1" }, "Your orders"), form);

  /** @type {any[]} what the list shows */
  let shown = [];
  /** @type {any[]} orders of the pages loaded with "Show older orders" */
  const older = [];
  let cursor = null;
  let timer = 0;
  let stopped = false;

  function row(order) {
    const cancel = order.status === "confirmed"
      ? h("button", { type: "button", class: "secondary", "data-cancel": order.id,
                      "aria-label": `Cancel order ${order.id.slice(-8)}` }, "Cancel")
      : null;
    cancel?.addEventListener("click", () => cancelOrder(order, /** @type {HTMLButtonElement} */ (cancel)));
    return h("li", { class: `order ${order.status}`, "data-order-id": order.id },
      h("div", { class: "order-head" },
        h("span", { class: "order-id" }, "Order ", h("code", null, order.id.slice(-8))),
        h("span", { class: `badge ${order.status}`, "data-status": order.status }, stateOf(order)),
        h("span", { class: "order-total" }, money(order.total_cents)),
        cancel),
      h("p", { class: "order-items" }, order.items.map((i) => `${i.quantity} × ${i.name}`).join(", ")),
      h("p", { class: "hint" }, `Placed ${when(order.created_at)} · updated ${when(order.updated_at)}`));
  }

  function render(orders) {
    // Keep the keyboard where it was across a re-render.
    const focused = document.activeElement?.getAttribute("data-cancel");
    list.replaceChildren(...(orders.length ? orders.map(row) : [h("li", null, "No orders yet.")]));
    if (focused) /** @type {HTMLElement | null} */ (list.querySelector(`[data-cancel="${CSS.escape(focused)}"]`))?.focus();
    shown = orders;
  }

  async function load(quiet) {
    const answer = await request("GET", "/v1/orders?limit=20", { auth: true, quiet });
    if (stopped) return;
    if (!answer.ok) {
      if (!quiet) showProblem(form, answer);
      return;
    }
    const fresh = answer.body.items;
    const all = [...fresh, ...older.filter((o) => !fresh.some((f) => f.id === o.id))];
    const changes = all.filter((o) => {
      const before = shown.find((s) => s.id === o.id);
      return before && stateOf(before) !== stateOf(o);
    });
    const signature = (orders) => orders.map((o) => `${o.id} ${stateOf(o)}`).join("\n");
    if (!quiet || signature(all) !== signature(shown)) render(all);
    if (!older.length) cursor = answer.body.next_cursor;
    more.hidden = !cursor;
    for (const order of changes) announce(`Order ${order.id.slice(-8)}: ${stateOf(order)}.`, null, "info");
  }

  function schedule() {
    if (stopped) return;
    const delay = shown.some(unsettled) ? 1000 : 5000;
    timer = window.setTimeout(async () => {
      if (!document.hidden) await load(true);
      schedule();
    }, delay);
  }

  async function cancelOrder(order, button) {
    button.disabled = true;
    const answer = await request("POST", `/v1/orders/${order.id}/cancel`, { auth: true });
    if (!answer.ok) {
      button.disabled = false;
      return showProblem(form, answer);
    }
    render(shown.map((o) => (o.id === order.id ? answer.body : o)));
    // The button is gone: keep the keyboard on the order it cancelled.
    const badge = list.querySelector(`[data-order-id="${CSS.escape(order.id)}"] .badge`);
    badge?.setAttribute("tabindex", "-1");
    /** @type {HTMLElement | null} */ (badge)?.focus();
    announce(`Order ${order.id.slice(-8)} cancelled; refund ${answer.body.refund_status}.`, answer);
    window.clearTimeout(timer);
    schedule();
  }

  more.addEventListener("click", async () => {
    const answer = await request("GET", `/v1/orders?limit=20&cursor=${encodeURIComponent(cursor)}`, { auth: true });
    if (!answer.ok) return showProblem(form, answer);
    const page = answer.body.items.filter((o) => !shown.some((s) => s.id === o.id));
    older.push(...page);
    render([...shown, ...page]);
    cursor = answer.body.next_cursor;
    more.hidden = !cursor;
  });

  load(false).then(schedule);
  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}
