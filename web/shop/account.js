// Register, log in, and the profile (with its stats and shipping address).

import { request, setToken } from "./api.js";
import { announce, clearProblem, field, h, money, showProblem, when } from "./ui.js";

/** An email just registered, to fill in the login form. */
let lastRegistered = "";

function input(name, props = {}) {
  return h("input", { name, id: `f-${name.replace(/\W/g, "-")}`, "data-field": name, ...props });
}

function addressFields(address) {
  return h("fieldset", null, h("legend", null, "Shipping address (needed to order)"),
    field("Street and number", input("address.line1", { autocomplete: "address-line1", value: address?.line1 ?? "" })),
    field("City", input("address.city", { autocomplete: "address-level2", value: address?.city ?? "" })),
    field("Postal code", input("address.postal_code", { autocomplete: "postal-code", value: address?.postal_code ?? "" })),
    field("Country", input("address.country", { autocomplete: "country", value: address?.country ?? "", size: 4 }),
      "Two letters, e.g. DE or FR"));
}

/** The address fields as the API's `address`, or null when all are empty. */
function addressOf(form) {
  const data = new FormData(form);
  const address = {
    line1: String(data.get("address.line1") ?? ""),
    city: String(data.get("address.city") ?? ""),
    postal_code: String(data.get("address.postal_code") ?? ""),
    country: String(data.get("address.country") ?? ""),
  };
  return Object.values(address).every((v) => v.trim() === "") ? null : address;
}

function submit(label) {
  return h("button", { type: "submit" }, label);
}

/** Runs `send` with the form's button disabled; returns its answer. */
async function busy(form, send) {
  const button = /** @type {HTMLButtonElement} */ (form.querySelector("button[type=submit]"));
  button.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    return await send();
  } finally {
    button.disabled = false;
    form.removeAttribute("aria-busy");
  }
}

/** `#/register` */
export function register(main, app) {
  const form = h("form", { novalidate: true, "aria-labelledby": "page-title" },
    field("Email", input("email", { type: "email", autocomplete: "email", required: true })),
    field("Password", input("password", { type: "password", autocomplete: "new-password", required: true }),
      "10 to 128 characters"),
    field("Name", input("name", { autocomplete: "name", required: true })),
    addressFields(null),
    submit("Create account"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { email: data.get("email"), password: data.get("password"), name: data.get("name") };
    const address = addressOf(form);
    if (address) body.address = address;
    const answer = await busy(form, () => request("POST", "/v1/users", { body }));
    if (!answer.ok) return showProblem(form, answer);
    clearProblem(form);
    lastRegistered = answer.body.email;
    app.go("#/login");
    announce(`Account created for ${answer.body.email}. Log in to shop.`, answer);
  });
  main.append(h("h1", { id: "page-title", tabindex: "-1" }, "Create an account"), form,
    h("p", null, "Already registered? ", h("a", { href: "#/login" }, "Log in")));
}

/** `#/login` */
export function login(main, app) {
  const form = h("form", { novalidate: true, "aria-labelledby": "page-title" },
    field("Email", input("email", { type: "email", autocomplete: "username", required: true, value: lastRegistered })),
    field("Password", input("password", { type: "password", autocomplete: "current-password", required: true })),
    submit("Log in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { email: data.get("email"), password: data.get("password") };
    const answer = await busy(form, () => request("POST", "/v1/sessions", { body }));
    if (!answer.ok) return showProblem(form, answer);
    setToken(answer.body.access_token);
    app.go(app.afterLogin ?? "#/");
    announce(`Logged in as ${body.email}.`, answer);
  });
  main.append(h("h1", { id: "page-title", tabindex: "-1" }, "Log in"), form,
    h("p", null, "New here? ", h("a", { href: "#/register" }, "Create an account")));
}

/** `#/profile`: who you are, your stats (they follow events; polled), your address. */
export function profile(main) {
  const details = h("dl", { class: "details" });
  const stats = h("dl", { class: "stats", id: "stats" });
  const form = h("form", { novalidate: true, "aria-label": "Shipping address" });
  main.append(h("h1", { id: "page-title", tabindex: "-1" }, "Profile"), details,
    h("section", { "aria-labelledby": "stats-title" }, h("h2", { id: "stats-title" }, "Your stats"), stats,
      h("p", { class: "hint" }, "Counted from order events: they follow within seconds.")),
    h("section", { "aria-labelledby": "address-title" }, h("h2", { id: "address-title" }, "Shipping address"), form));
  let shown = "";
  async function load(quiet) {
    const answer = await request("GET", "/v1/users/me", { auth: true, quiet });
    if (!answer.ok) {
      if (!quiet) announce(answer.problem?.title ?? "Could not load the profile", answer, "error");
      return;
    }
    const user = answer.body;
    details.replaceChildren(h("dt", null, "Name"), h("dd", null, user.name), h("dt", null, "Email"),
      h("dd", null, user.email), h("dt", null, "Member since"), h("dd", null, when(user.created_at)));
    const now = `${user.stats.orders_confirmed}/${user.stats.total_spent_cents}`;
    if (now !== shown) {
      stats.replaceChildren(
        h("dt", null, "Orders confirmed"), h("dd", { id: "orders-confirmed" }, String(user.stats.orders_confirmed)),
        h("dt", null, "Total spent"), h("dd", { id: "total-spent" }, money(user.stats.total_spent_cents)));
      if (shown) announce(`Stats updated: ${user.stats.orders_confirmed} orders, ${money(user.stats.total_spent_cents)} spent.`, null, "info");
      shown = now;
    }
    if (!quiet) fillAddress(user.address);
  }
  function fillAddress(address) {
    form.replaceChildren(addressFields(address), submit("Save address"));
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await busy(form, () =>
      request("PATCH", "/v1/users/me", { auth: true, body: { address: addressOf(form) } }));
    if (!answer.ok) return showProblem(form, answer);
    clearProblem(form);
    fillAddress(answer.body.address);
    announce(answer.body.address ? "Address saved." : "Address removed.", answer);
  });
  load(false);
  const timer = setInterval(() => document.hidden || load(true), 2000);
  return () => clearInterval(timer);
}
