// The storefront's browser test: Playwright's runner driving Debian's
// chromium (never a downloaded browser) against one running build, whose
// edge URL scripts/browser-test passes in SHOP_URL.
//
//   SHOP_URL       the edge, e.g. http://127.0.0.1:8080 (required)
//   SHOP_BUILD     which build it is, for the report (microservices | monolith)
//   JAEGER_UI_URL  the Jaeger UI the edge was started with ("" = no links)
//   SHOP_SCREENSHOTS  a directory: save a screenshot of each page there
//   CHROMIUM       the browser binary (default /usr/lib/chromium/chromium)
//   SHOP_OUTPUT    where failures leave their traces and screenshots

import { defineConfig } from "@playwright/test";

if (!process.env.SHOP_URL) throw new Error("SHOP_URL is not set: run scripts/browser-test");

export default defineConfig({
  testDir: ".",
  testMatch: "*.spec.js",
  // One journey per build; its steps depend on each other.
  workers: 1,
  fullyParallel: false,
  retries: 0,
  timeout: 120_000,
  // Eventual consistency: stats and refunds follow within 5 s (docs/api.md).
  expect: { timeout: 10_000 },
  outputDir: process.env.SHOP_OUTPUT ?? "../../target/browser-test/results",
  reporter: [["list", { printSteps: true }]],
  use: {
    baseURL: process.env.SHOP_URL,
    browserName: "chromium",
    headless: true,
    viewport: { width: 1200, height: 860 },
    launchOptions: { executablePath: process.env.CHROMIUM ?? "/usr/lib/chromium/chromium" },
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
  },
});
