// The catalog and the cart: choose quantities, place one order.
//
// Idempotency: the cart's contents get one key, made when they change and
// kept until an answer arrives. A second click while the first is on its
// way finds the button disabled; a retry after an answer that was lost
// (network down) sends the same key, so the shop replays the order it
// already placed instead of placing a second one (docs/api.md,
// "Idempotency").

import { newKey, request, token } from "./api.js";
import { announce, clearProblem, h, money, showProblem } from "./ui.js";

/** Quantities by product id; kept while the tab lives. */
const cart = new Map();
/** The key of the cart's current contents: `{key, body}` or null. */
let intent = null;

/** `#/` */
export function catalog(main) {
  const rows = h("tbody");
  const summary = h("p", { id: "cart-total", "aria-live": "polite" });
  const button = h("button", { type: "submit", id: "place-order" }, "Place order");
  const result = h("div", { id: "order-result" });
  const form = h("form", { novalidate: true, "aria-labelledby": "page-title" },
    h("table", { class: "catalog" },
      h("caption", { class: "visually-hidden" }, "Products, prices and the quantity in your cart"),
      h("thead", null, h("tr", null, h("th", { scope: "col" }, "Product"), h("th", { scope: "col", class: "num" }, "Price"),
        h("th", { scope: "col", class: "num" }, "Quantity"))),
      rows),
    h("div", { class: "cart" }, summary,
      token() ? button : h("p", null, h("a", { href: "#/login" }, "Log in"), " or ",
        h("a", { href: "#/register" }, "create an account"), " to order.")),
    result);
  main.append(h("h1", { id: "page-title", tabindex: "-1" }, "Catalog"), form);

  /** @type {{id: string, name: string, price_cents: number}[]} */
  let products = [];
  const items = () => products.filter((p) => (cart.get(p.id) ?? 0) > 0)
    .map((p) => ({ product_id: p.id, quantity: cart.get(p.id) ?? 0 }));
  function total() {
    const cents = products.reduce((sum, p) => sum + p.price_cents * (cart.get(p.id) ?? 0), 0);
    const count = items().reduce((n, i) => n + i.quantity, 0);
    summary.textContent = count ? `In your cart: ${count} item${count > 1 ? "s" : ""}, ${money(cents)}` : "Your cart is empty.";
  }

  (async () => {
    const answer = await request("GET", "/v1/products");
    if (!answer.ok) return showProblem(form, answer);
    products = answer.body.items;
    rows.replaceChildren(...products.map((p) => {
      const id = `qty-${p.id}`;
      const qty = h("input", { id, name: id, type: "number", min: "0", max: "100", step: "1", inputmode: "numeric",
        value: String(cart.get(p.id) ?? 0) });
      qty.addEventListener("input", () => {
        const n = Number.parseInt(qty.value, 10);
        cart.set(p.id, Number.isFinite(n) && n > 0 ? n : 0);
        total();
      });
      return h("tr", null, h("th", { scope: "row" }, h("label", { for: id }, p.name)),
        h("td", { class: "num" }, money(p.price_cents)), h("td", { class: "num" }, h("div", { class: "field" }, qty)));
    }));
    total();
  })();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    clearProblem(form);
    const chosen = items();
    if (!chosen.length) {
      announce("Choose a quantity for at least one product first.", null, "error");
      return;
    }
    const body = { items: chosen };
    // A field error names `items[i].quantity`: the input of the i-th item sent.
    for (const input of rows.querySelectorAll("input")) input.removeAttribute("data-field");
    chosen.forEach((item, i) => document.getElementById(`qty-${item.product_id}`)?.setAttribute("data-field", `items[${i}].quantity`));
    const text = JSON.stringify(body);
    if (!intent || intent.body !== text) intent = { key: newKey(), body: text };
    button.disabled = true;
    button.textContent = "Placing order…";
    form.setAttribute("aria-busy", "true");
    const answer = await request("POST", "/v1/orders", { body, auth: true, key: intent.key });
    button.disabled = false;
    button.textContent = "Place order";
    form.removeAttribute("aria-busy");
    if (answer.status === 0) {
      // No answer: the order may exist. Keep the key, so a retry replays it.
      showProblem(form, { ...answer, problem: { ...answer.problem,
        detail: `${answer.problem?.detail} Placing it again is safe: the same idempotency key is sent.` } });
      return;
    }
    if (answer.status !== 409) intent = null; // 409 in use: the first attempt is still being processed
    if (!answer.ok) return showProblem(form, answer);
    const order = answer.body;
    cart.clear();
    for (const input of rows.querySelectorAll("input")) /** @type {HTMLInputElement} */ (input).value = "0";
    total();
    const verdict = order.status === "rejected"
      ? `Order rejected: ${order.rejection_reason === "insufficient_funds" ? "insufficient funds" : order.rejection_reason}.`
      : `Order ${order.status}: ${money(order.total_cents)}.`;
    result.replaceChildren(h("p", { class: `verdict ${order.status}`, "data-order-id": order.id }, verdict, " ",
      h("a", { href: "#/orders" }, "See your orders"), order.status === "rejected" ? [" or ", h("a", { href: "#/wallet" }, "top up")] : null));
    announce(verdict, answer, order.status === "rejected" ? "error" : "ok");
  });
}
