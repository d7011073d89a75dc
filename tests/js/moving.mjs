// A client of a session that moves (tests/e2e/test_moving.py): logs in on a page (a session cookie, a persistent
// one, localStorage), says so, waits for the close the move sends, reconnects to the same cdpUrl (the relay holds
// the connect while the session moves) and reads it all back from the same tab.
import puppeteer from 'puppeteer-core';

const [cdpUrl, pageUrl] = process.argv.slice(2);
const browser = await puppeteer.connect({ browserWSEndpoint: cdpUrl });
const page = await browser.newPage();
await page.goto(pageUrl);
await page.evaluate(() => state('logged-in'));
await page.evaluate(() => { document.cookie = 'sid=s3cret; path=/'; });
const closed = new Promise((resolve) => browser.once('disconnected', resolve));
console.log(JSON.stringify({ ready: true }));
await closed;
const lostAt = Date.now();
let again;
for (const until = Date.now() + 90000; ;) {
  try {
    again = await puppeteer.connect({ browserWSEndpoint: cdpUrl });
    break;
  } catch (error) {
    if (Date.now() > until) throw error;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
const pages = await again.pages();
const tab = pages.find((p) => p.url() === pageUrl);
const result = { backAfterMs: Date.now() - lostAt, urls: pages.map((p) => p.url()), found: Boolean(tab) };
if (tab) {
  Object.assign(result, await tab.evaluate(() => state()));
  result.cookie = await tab.evaluate(() => document.cookie);
}
await again.disconnect();
console.log(JSON.stringify(result));
