// Drives Debian's Chromium (headless, through playwright-core) through the web page behind the gateway, as a
// person would, and prints what it saw as JSON lines for the Rust test to check. Between steps that need the
// test to act (stop the model server), it prints {"waiting": "<step>"} and reads a line from standard input.
//
// Usage: node page_check.mjs '<json>' with {url, host, address, user, password, oversized_bytes, screenshot}:
// `url` is what the person types (https://ml.example.com/); `host` is mapped to `address` (the gateway's listener).
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";
import { execFileSync } from "node:child_process";

const options = JSON.parse(process.argv[2]);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const report = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
const wait = async (step) => {
  report({ waiting: step });
  await lines.next();
};

const chromiumPath = execFileSync("sh", ["-c", "command -v chromium"]).toString().trim();
// Playwright gives the browser a fresh profile. The flags are what a closed network needs (no background
// connections to Google); the gateway's host resolves to its listener on loopback.
const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    `--host-resolver-rules=MAP ${options.host} ${options.address}`,
    // The gateway is a public address in a deployment; here it is on loopback, where Chromium's Local Network
    // Access checks would block a public page's requests to it themselves and hide what the gateway does.
    "--disable-features=LocalNetworkAccessChecks",
  ],
});

/// A fresh browser window whose prompt, when the gateway asks, is answered with `credentials`.
/// (The NLB's certificate is the test CA's, which this fresh profile does not trust.)
const contextWith = (credentials) =>
  browser.newContext({ httpCredentials: credentials, ignoreHTTPSErrors: true, viewport: { width: 1100, height: 900 } });

/// The page's own response: the status and challenge the browser got. Without credentials to answer a challenge,
/// Playwright cancels it and the navigation fails after the 401 arrived, so the response is caught as it comes.
async function load(page, url) {
  const arrived = page.waitForResponse((r) => r.url() === url);
  await page.goto(url).catch((error) => {
    if (!String(error).includes("ERR_INVALID_AUTH_CREDENTIALS")) throw error;
  });
  const response = await arrived;
  return { status: response.status(), www_authenticate: (await response.allHeaders())["www-authenticate"] ?? null };
}

async function messageAfter(page, action) {
  const message = page.locator("#message");
  await action();
  await message.waitFor({ state: "visible", timeout: 60_000 });
  return (await message.textContent()) ?? "";
}

try {
  // 1. No credentials: the page's GET is refused with the challenge that makes a browser ask.
  {
    const anonymous = await contextWith(undefined);
    report({ step: "anonymous", ...(await load(await anonymous.newPage(), options.url)) });
  }

  // 2. Signed in (the browser answers the challenge): the page, its model line and the gallery.
  const signedIn = await contextWith({ username: options.user, password: options.password });
  const page = await signedIn.newPage();
  const response = await page.goto(options.url);
  await page.locator("#gallery-summary[data-known]").waitFor({ timeout: 60_000 });
  const tiles = await page.locator("#gallery li").evaluateAll((items) =>
    items.map((li) => ({
      label: li.dataset.label,
      probability: Number(li.dataset.probability),
      wrong: li.classList.contains("wrong"),
    })),
  );
  const summary = page.locator("#gallery-summary");
  report({
    step: "gallery",
    status: response.status(),
    protocol: await page.evaluate(() => performance.getEntriesByType("navigation")[0]?.nextHopProtocol),
    model: await page.locator("#model").textContent(),
    right: Number(await summary.getAttribute("data-right")),
    known: Number(await summary.getAttribute("data-known")),
    summary: await summary.textContent(),
    tiles,
  });

  // 3. Photos from the test set that the model gets right, one cat and one non-cat, as files a person picks.
  const samples = await page.evaluate(async () => (await fetch("/samples.json")).json());
  for (const wanted of [1, 0]) {
    const index = samples.images.findIndex((s, i) => s.label === wanted && !tiles[i].wrong);
    if (index < 0) continue;
    const buffer = Buffer.from(samples.images[index].png, "base64");
    await page.locator("#file").setInputFiles({ name: `sample-${index}.png`, mimeType: "image/png", buffer });
    const answer = page.locator("#answer[data-label]");
    await answer.waitFor({ timeout: 60_000 });
    report({
      step: wanted === 1 ? "classified_cat" : "classified_non_cat",
      index,
      truth: wanted,
      label: await answer.getAttribute("data-label"),
      probability: Number(await answer.getAttribute("data-probability")),
      detail: await page.locator("#detail").textContent(),
    });
    if (wanted === 1 && options.screenshot) {
      const jpeg = /\.jpe?g$/.test(options.screenshot);
      await page.screenshot({ path: options.screenshot, fullPage: true, ...(jpeg ? { quality: 85 } : {}) });
    }
  }

  // 4. The signed-in person visits pages on another origin that make the browser POST to the model's gRPC method the
  // ways a page may without a CORS preflight: a form of each enctype, auto-submitted, and a no-cors fetch. The
  // browser adds the person's credentials. None may reach the model; the person's own page still works.
  {
    await wait("cross-site attack");
    const target = new URL("/inference.GRPCInferenceService/ModelInfer", options.url).href;
    const form = (enctype) =>
      `<form method="POST" action="${target}" enctype="${enctype}">` +
      `<input name="\u0000\u0000\u0000\u0000\u0010" value="payload"></form>` +
      `<script>document.forms[0].submit();</script>`;
    const fetchNoCors = `<script>fetch(${JSON.stringify(target)}, {method: "POST", mode: "no-cors", credentials: "include", body: "x=y"});</script>`;
    const attacks = [
      form("text/plain"),
      form("application/x-www-form-urlencoded"),
      form("multipart/form-data"),
      fetchNoCors,
    ];
    const answers = [];
    for (const [i, html] of attacks.entries()) {
      const visit = await signedIn.newPage();
      const attacker = `http://attacker.example/${i}`;
      await visit.route(attacker, (route) => route.fulfill({ contentType: "text/html", body: `<!doctype html>${html}` }));
      const finished = new Promise((resolve) => {
        const record = async (request) => {
          if (request.url() !== target) return;
          const response = await request.response().catch(() => null);
          const sent = await request.allHeaders().catch(() => ({}));
          resolve({
            status: response ? response.status() : 0,
            failure: request.failure()?.errorText ?? null,
            content_type: sent["content-type"] ?? null,
          });
        };
        visit.on("requestfinished", record);
        visit.on("requestfailed", record);
      });
      await visit.goto(attacker);
      answers.push(await Promise.race([finished, new Promise((resolve) => setTimeout(() => resolve(null), 30_000))]));
      await visit.close();
    }
    report({ step: "cross_site", answers });
    await wait("cross-site attack done");
    const buffer = Buffer.from(samples.images[0].png, "base64");
    await page.locator("#file").setInputFiles({ name: "after-visit.png", mimeType: "image/png", buffer });
    const answer = page.locator("#answer[data-label]");
    await answer.waitFor({ timeout: 60_000 });
    report({ step: "after_cross_site", label: await answer.getAttribute("data-label") });
  }

  // 5. A photo over the gateway's limit, picked like any other file: the size message. (Made in the page: Playwright
  // cannot hand a file this large to the browser. ASCII bytes: DevTools reports the request body to Playwright as
  // text, where other bytes would be escaped past what a Node string holds.)
  {
    const text = await messageAfter(page, () =>
      page.evaluate((size) => {
        const input = document.querySelector("#file");
        const picked = new DataTransfer();
        picked.items.add(new File([new Uint8Array(size).fill(0x41)], "huge-photo.jpg", { type: "image/jpeg" }));
        input.files = picked.files;
        input.dispatchEvent(new Event("change", { bubbles: true }));
      }, options.oversized_bytes),
    );
    report({ step: "oversized", message: text });
  }

  // 6. The password changed under an open page: its calls carry the old one.
  {
    await page.route("**/inference.GRPCInferenceService/**", (route) =>
      route.continue({
        headers: {
          ...route.request().headers(),
          authorization: `Basic ${Buffer.from(`${options.user}:not-the-password`).toString("base64")}`,
        },
      }),
    );
    const buffer = Buffer.from(samples.images[0].png, "base64");
    const text = await messageAfter(page, () =>
      page.locator("#file").setInputFiles({ name: "again.png", mimeType: "image/png", buffer }),
    );
    report({ step: "stale_password", message: text });
    await page.unrouteAll();
  }

  // 7. A wrong password at sign-in: the challenge again, so the browser asks again.
  {
    const wrong = await contextWith({ username: options.user, password: "not-the-password" });
    report({ step: "wrong_password", ...(await load(await wrong.newPage(), options.url)) });
  }

  // 8. The model server goes down under an open page.
  {
    await wait("stop the model server");
    const buffer = Buffer.from(samples.images[0].png, "base64");
    const text = await messageAfter(page, () =>
      page.locator("#file").setInputFiles({ name: "down.png", mimeType: "image/png", buffer }),
    );
    report({ step: "server_down", message: text });
  }
} finally {
  await browser.close();
}
process.exit(0);
