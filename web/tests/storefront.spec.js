// The storefront's whole journey in a real browser, against one running
// build behind its edge: register (after a refused attempt), log in by
// keyboard, top up, order with a double click (one order), lose an answer
// and retry it (the same order, replayed), be refused for insufficient
// funds, cancel and watch the refund arrive, and see the stats follow.
// Every action must show the trace id the shop answered with
// (`traceresponse`), linked to Jaeger when the edge names one.

import { expect, test } from "@playwright/test";

const jaeger = (process.env.JAEGER_UI_URL ?? "").replace(/\/+$/, "");
const screenshots = process.env.SHOP_SCREENSHOTS ?? "";

/** The trace id of an answer's `traceresponse` header. */
function traceOf(response) {
  return /^00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(response.headers().traceresponse ?? "")?.[1];
}

/**
 * Runs `action`, waits for the answer to `method path`, and checks the
 * page shows that answer's trace id (and its Jaeger link) in the status
 * line and logs the request. Returns the answer.
 */
async function act(page, method, path, action) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === method && new URL(r.url()).pathname === path),
    action(),
  ]);
  await showsTrace(page, response);
  return response;
}

/** The status line and the request log show `response`'s trace id. */
async function showsTrace(page, response) {
  const { method, path } = { method: response.request().method(), path: new URL(response.url()).pathname };
  const traceId = traceOf(response);
  expect(traceId, `${method} ${path} names its trace in traceresponse`).toMatch(/^[0-9a-f]{32}$/);
  const shown = page.locator("#status [data-trace-id]");
  await expect(shown).toHaveAttribute("data-trace-id", traceId);
  if (jaeger) await expect(shown).toHaveAttribute("href", `${jaeger}/trace/${traceId}`);
  // And the request log lists it with the same trace.
  await expect(page.locator("#log li").filter({ has: page.locator(`[data-trace-id="${traceId}"]`) }))
    .toContainText(`${method} ${path} ${response.status()}`);
}

async function shot(page, name) {
  if (!screenshots) return;
  // Dates change from run to run; everything else on the page is the journey's.
  await page.screenshot({ path: `${screenshots}/${name}.png`, fullPage: true });
}

/** The caller's orders, straight from the API with the page's own token. */
async function ordersOf(page) {
  const token = await page.evaluate(() => sessionStorage.getItem("twinshop.token"));
  const res = await page.request.get("/v1/orders?limit=100", { headers: { authorization: `Bearer ${token}` } });
  expect(res.status()).toBe(200);
  return (await res.json()).items;
}

async function nav(page, name) {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true }).click();
  await expect(page.getByRole("heading", { level: 1 })).toBeFocused();
}

test("the storefront journey: register, top up, order, rejection, cancellation and refund, stats", async ({ page }) => {
  const email = `ada-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
  const password = "correct horse battery";
  // No script error and no refused resource (CSP, media type) on any page.
  // Chromium logs each 4xx answer and the aborted request as "Failed to
  // load resource": those are the journey's own refusals, checked below.
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) pageErrors.push(message.text());
  });

  await test.step("the edge serves /shop/ and still answers / with 404 not_found", async () => {
    const root = await page.request.get("/");
    expect(root.status()).toBe(404);
    expect((await root.json()).code).toBe("not_found");
    await page.goto("/shop/");
    await expect(page).toHaveTitle("Catalog · twinshop");
    for (const role of ["banner", "navigation", "main", "complementary", "contentinfo", "status"]) {
      await expect(page.getByRole(role).first(), `landmark ${role}`).toBeAttached();
    }
    await expect(page.locator("table.catalog tbody tr")).toHaveCount(8);
    await expect(page.getByRole("row", { name: /Coffee beans, 1 kg/ })).toContainText("€18.90");
    await expect(page.getByRole("link", { name: "Catalog" })).toHaveAttribute("aria-current", "page");
    await shot(page, "1-catalog");
  });

  await test.step("a refused registration shows the problem's title and each field's error", async () => {
    await nav(page, "Register");
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill("short");
    await page.getByLabel("Name").fill("Ada Lovelace");
    await page.getByLabel("Country").fill("XX");
    await act(page, "POST", "/v1/users", () => page.getByRole("button", { name: "Create account" }).click());
    await expect(page.getByRole("alert")).toContainText("Request validation failed");
    await expect(page.getByLabel("Password")).toHaveAttribute("aria-invalid", "true");
    await expect(page.getByLabel("Password")).toBeFocused();
    await expect(page.locator("#f-password-error")).not.toBeEmpty();
    await expect(page.getByLabel("Country")).toHaveAttribute("aria-invalid", "true");
    await shot(page, "2-register-refused");
  });

  await test.step("register with an address", async () => {
    await page.getByLabel("Password").fill(password);
    await page.getByLabel("Street and number").fill("12 St James's Square");
    await page.getByLabel("City").fill("London");
    await page.getByLabel("Postal code").fill("SW1Y 4JH");
    await page.getByLabel("Country").fill("GB");
    await act(page, "POST", "/v1/users", () => page.getByRole("button", { name: "Create account" }).click());
    await expect(page).toHaveURL(/#\/login$/);
    await expect(page.locator("#status")).toContainText(`Account created for ${email}`);
  });

  await test.step("a wrong password is refused; log in with the keyboard only", async () => {
    await expect(page.getByLabel("Email")).toHaveValue(email);
    await page.getByLabel("Password").fill("not the password");
    await act(page, "POST", "/v1/sessions", () => page.getByLabel("Password").press("Enter"));
    await expect(page.getByRole("alert")).toContainText("Invalid email or password");
    await shot(page, "3-login-refused");
    await page.getByLabel("Password").focus();
    await page.keyboard.press("ControlOrMeta+a");
    await page.keyboard.type(password);
    await page.keyboard.press("Tab");
    await expect(page.getByRole("button", { name: "Log in" })).toBeFocused();
    await act(page, "POST", "/v1/sessions", () => page.keyboard.press("Enter"));
    await expect(page.getByRole("link", { name: "Orders" })).toBeVisible();
    expect(await page.evaluate(() => sessionStorage.getItem("twinshop.token"))).toBeTruthy();
  });

  await test.step("top up €50.00: balance and ledger", async () => {
    await nav(page, "Wallet");
    await expect(page.locator("#balance")).toHaveText("€0.00");
    await page.getByLabel("Amount in euros").fill("50.00");
    const res = await act(page, "POST", "/v1/wallet/top-ups", () => page.getByRole("button", { name: "Top up" }).click());
    expect(res.status()).toBe(201);
    expect(res.request().headers()["idempotency-key"], "a top-up carries an idempotency key").toMatch(/^[0-9a-f-]{36}$/);
    await expect(page.locator("#balance")).toHaveText("€50.00");
    await expect(page.locator("#ledger tr[data-kind=top_up]")).toHaveCount(1);
    await shot(page, "4-wallet-topped-up");
  });

  await test.step("a double click places one order", async () => {
    await nav(page, "Catalog");
    await page.getByLabel("Coffee beans, 1 kg").fill("2");
    await expect(page.locator("#cart-total")).toHaveText("In your cart: 2 items, €37.80");
    const sent = [];
    const count = (request) => request.method() === "POST" && request.url().endsWith("/v1/orders") && sent.push(request);
    page.on("request", count);
    await page.getByRole("button", { name: "Place order" }).dblclick();
    await expect(page.locator("#order-result")).toContainText("Order confirmed: €37.80");
    page.off("request", count);
    expect(sent, "one request for a double click").toHaveLength(1);
    expect(await ordersOf(page), "one order for a double click").toHaveLength(1);
    const res = await sent[0].response();
    expect(res.status()).toBe(201);
    await showsTrace(page, res);
    await shot(page, "5-order-confirmed");
  });

  await test.step("an answer lost on the way back: the retry replays the same order", async () => {
    await page.getByLabel("Green tea, 100 g").fill("1");
    const keys = [];
    await page.route("**/v1/orders", async (route) => {
      keys.push(route.request().headers()["idempotency-key"]);
      await route.fetch(); // the shop places the order...
      await route.abort("connectionreset"); // ...and its answer never arrives
    }, { times: 1 });
    await page.getByRole("button", { name: "Place order" }).click();
    await expect(page.getByRole("alert")).toContainText("Placing it again is safe");
    expect(await ordersOf(page), "the lost attempt placed its order").toHaveLength(2);
    const res = await act(page, "POST", "/v1/orders", () => page.getByRole("button", { name: "Place order" }).click());
    expect(res.request().headers()["idempotency-key"], "the retry sends the same key").toBe(keys[0]);
    expect(res.headers()["idempotent-replayed"]).toBe("true");
    await expect(page.locator("#log li").filter({ hasText: "(replayed)" })).toHaveCount(1);
    await expect(page.locator("#order-result")).toContainText("Order confirmed: €6.50");
    expect(await ordersOf(page), "still one order for the retried click").toHaveLength(2);
  });

  await test.step("insufficient funds: the order is rejected and nothing is charged", async () => {
    await page.getByLabel("Hand grinder").fill("1");
    const res = await act(page, "POST", "/v1/orders", () => page.getByRole("button", { name: "Place order" }).click());
    expect((await res.json()).rejection_reason).toBe("insufficient_funds");
    await expect(page.locator("#order-result")).toContainText("Order rejected: insufficient funds.");
    await expect(page.locator("#status")).toContainText("insufficient funds");
    await shot(page, "6-order-rejected");
  });

  await test.step("orders: cancel the coffee and watch the refund arrive", async () => {
    await nav(page, "Orders");
    const rows = page.locator("#orders li.order");
    await expect(rows).toHaveCount(3);
    const coffee = rows.filter({ hasText: "2 × Coffee beans, 1 kg" });
    await expect(coffee.locator(".badge")).toHaveText("Confirmed");
    await expect(rows.filter({ hasText: "Hand grinder" }).locator(".badge")).toHaveText("Rejected (insufficient funds)");
    await act(page, "POST", `/v1/orders/${await coffee.getAttribute("data-order-id")}/cancel`,
      () => coffee.getByRole("button", { name: /Cancel order/ }).click());
    await expect(coffee.locator(".badge")).toHaveText(/^Cancelled, (refund pending|refunded)$/);
    // No reload: the page polls, and the refund event changes the status.
    await expect(coffee.locator(".badge")).toHaveText("Cancelled, refunded");
    await shot(page, "7-orders");
  });

  await test.step("the refund is in the ledger and the wallet", async () => {
    await nav(page, "Wallet");
    await expect(page.locator("#ledger tr[data-kind=refund]")).toHaveCount(1);
    await expect(page.locator("#ledger tr[data-kind=refund]")).toContainText("+€37.80");
    await expect(page.locator("#ledger tr[data-kind=charge]")).toHaveCount(2);
    await expect(page.locator("#balance")).toHaveText("€43.50");
    await shot(page, "8-wallet-refunded");
  });

  await test.step("the profile's stats follow: the cancelled order no longer counts", async () => {
    await nav(page, "Profile");
    await expect(page.locator("#orders-confirmed")).toHaveText("1");
    await expect(page.locator("#total-spent")).toHaveText("€6.50");
    await expect(page.locator(".details")).toContainText(email);
    await shot(page, "9-profile");
  });

  await test.step("log out: the token is gone", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await expect(page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Log in" })).toBeVisible();
    expect(await page.evaluate(() => sessionStorage.getItem("twinshop.token"))).toBeNull();
  });

  expect(pageErrors, "no script error or refused resource on any page").toEqual([]);
});
