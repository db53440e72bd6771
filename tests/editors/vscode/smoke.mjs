// Drives the real VS Code workbench (code-server) in headless Chromium: opens a file of the
// workspace, waits for the Hearth status bar item, types a function header, waits for ghost
// text, accepts it with Tab and saves. Writes what it saw to $SMOKE_RESULTS (JSON); the
// assertions are made by test_vscode.py.
//
// Env: SMOKE_URL (http://127.0.0.1:PORT), SMOKE_WORKSPACE (folder), SMOKE_FILE (relative path),
//      SMOKE_RESULTS (output JSON), SMOKE_PROFILE (fresh browser profile dir),
//      SMOKE_SCREENSHOT (optional PNG written on failure).
import { writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const results = { statusTexts: [], ghostTexts: [], done: false };
const save = () => writeFileSync(env('SMOKE_RESULTS'), JSON.stringify(results, null, 2));

class Fatal extends Error {}

async function waitFor(what, fn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (error) {
      if (error instanceof Fatal) throw error;
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out waiting for ${what}${lastError ? ` (last error: ${lastError.message})` : ''}`);
}

const context = await chromium.launchPersistentContext(env('SMOKE_PROFILE'), {
  executablePath: process.env.SMOKE_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 900 },
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const page = context.pages()[0] ?? (await context.newPage());

const statusItem = page.locator('[id$="hearth.status"]');
const ghost = page.locator('.monaco-editor .ghost-text, .monaco-editor .ghost-text-decoration');

async function readStatus() {
  if ((await statusItem.count()) === 0) return null;
  const text = (await statusItem.first().innerText()).trim();
  if (results.statusTexts.at(-1) !== text) results.statusTexts.push(text);
  return text;
}

async function readGhost() {
  const count = await ghost.count();
  if (count === 0) return null;
  const parts = [];
  for (let index = 0; index < count; index++) {
    parts.push(await ghost.nth(index).innerText());
  }
  const text = parts.join('\n');
  return text.trim() ? text : null;
}

try {
  const workspace = env('SMOKE_WORKSPACE');
  await page.goto(`${env('SMOKE_URL')}/?folder=${encodeURIComponent(workspace)}`);
  await page.waitForSelector('.monaco-workbench', { timeout: 120_000 });
  results.workbench = true;

  // Open the file with Quick Open, as a user would.
  const file = env('SMOKE_FILE');
  await waitFor('Quick Open', async () => {
    await page.keyboard.press('Control+P');
    await page.waitForSelector('.quick-input-widget input', { state: 'visible', timeout: 5_000 });
    return true;
  }, 60_000);
  await page.keyboard.type(file.split('/').pop());
  await page.waitForSelector('.quick-input-list .monaco-list-row', { timeout: 30_000 });
  await page.keyboard.press('Enter');
  await page.waitForSelector('.monaco-editor .view-lines', { timeout: 30_000 });
  results.opened = true;

  // The extension activated, started `hearth lsp`, and got a hearth/status notification.
  await waitFor('the Hearth status bar item to leave "starting"', async () => {
    const text = await readStatus();
    if (text && /stopped/i.test(text)) {
      throw new Fatal(`the Hearth server stopped (status bar: "${text}"); see the Hearth output channel log`);
    }
    return text && !/starting/i.test(text) ? text : null;
  }, 180_000);

  // Type at the end of the file.
  await page.locator('.monaco-editor .view-lines').first().click();
  await page.keyboard.press('Control+End');
  await page.keyboard.press('Enter');
  await page.keyboard.press('Enter');
  await page.keyboard.type('def total_with_tax(order: Order) -> int:');
  await page.keyboard.press('Enter');

  const more = 'subtotal = ';
  let shown = null;
  for (let attempt = 0; attempt <= more.length && !shown; attempt++) {
    try {
      shown = await waitFor('ghost text', readGhost, attempt === 0 ? 180_000 : 20_000);
    } catch (error) {
      if (attempt === more.length) throw error;
      await page.keyboard.type(more[attempt]);
    }
  }
  results.ghostTexts.push(shown);
  await page.keyboard.press('Tab');
  await waitFor('the ghost text to be accepted', async () => (await readGhost()) === null, 20_000);
  await page.keyboard.press('Control+S');
  await page.waitForTimeout(1_500);
  await readStatus();
  results.done = true;
} catch (error) {
  results.error = String(error && error.stack ? error.stack : error);
  if (process.env.SMOKE_SCREENSHOT) {
    await page.screenshot({ path: process.env.SMOKE_SCREENSHOT }).catch(() => {});
  }
} finally {
  save();
  await context.close();
}
