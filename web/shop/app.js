// The storefront's entry point: hash routes (`#/orders`; the edge serves
// one page, so no server-side routing is needed), the navigation, the
// session, and the request log.

import { onAnswer, setToken, token } from "./api.js";
import { login, profile, register } from "./account.js";
import { catalog } from "./catalog.js";
import { orders } from "./orders.js";
import { announce, h, loadConfig, logAnswer } from "./ui.js";
import { wallet } from "./wallet.js";

/**
 * @typedef {{title: string, render: (main: HTMLElement, app: App) => (void | (() => void)),
 *            auth?: boolean, guest?: boolean}} Route
 * @typedef {{afterLogin: string | null, go: (hash: string) => void}} App
 */

/** @type {Record<string, Route>} */
const routes = {
  "#/": { title: "Catalog", render: catalog },
  "#/orders": { title: "Your orders", render: orders, auth: true },
  "#/wallet": { title: "Wallet", render: wallet, auth: true },
  "#/profile": { title: "Profile", render: profile, auth: true },
  "#/register": { title: "Create an account", render: register, guest: true },
  "#/login": { title: "Log in", render: login, guest: true },
};

/** @type {App} */
const app = {
  afterLogin: null,
  // At once (pushState fires no hashchange), so that what the caller
  // announces next is said on the new page.
  go(hash) {
    if (location.hash !== hash) history.pushState(null, "", hash);
    show();
  },
};

/** Stops the shown page's polling. */
let leave = null;
let first = true;

function show() {
  // Other fragments (the skip link's #main) are not routes.
  if (location.hash && !location.hash.startsWith("#/")) return;
  const hash = location.hash in routes ? location.hash : "#/";
  const route = routes[hash];
  if (route.auth && !token()) {
    app.afterLogin = hash;
    location.replace("#/login");
    return;
  }
  leave?.();
  // A new page starts without the last one's message.
  document.getElementById("status")?.replaceChildren();
  const main = /** @type {HTMLElement} */ (document.getElementById("main"));
  main.replaceChildren();
  leave = route.render(main, app) ?? null;
  document.title = `${route.title} · twinshop`;
  nav(hash);
  // Keyboard and screen-reader users start on the new page's heading.
  if (!first) /** @type {HTMLElement | null} */ (main.querySelector("h1"))?.focus();
  first = false;
}

function nav(current) {
  const link = (hash, text) => h("li", null,
    h("a", { href: hash, "aria-current": hash === current ? "page" : null }, text));
  const list = /** @type {HTMLElement} */ (document.getElementById("nav"));
  const logout = h("button", { type: "button", class: "link" }, "Log out");
  logout.addEventListener("click", () => {
    setToken(null);
    app.go("#/");
    announce("Logged out.", null, "info");
  });
  list.replaceChildren(link("#/", "Catalog"),
    ...(token()
      ? [link("#/orders", "Orders"), link("#/wallet", "Wallet"), link("#/profile", "Profile"), h("li", null, logout)]
      : [link("#/login", "Log in"), link("#/register", "Register")]));
}

window.addEventListener("twinshop:session-ended", () => {
  app.afterLogin = location.hash in routes ? location.hash : null;
  app.go("#/login");
  announce("Your session has ended: log in again.", null, "error");
});

onAnswer(logAnswer);
window.addEventListener("hashchange", show);
await loadConfig();
show();
