// What a session's pages see of its browser options, through Puppeteer as a user's backend drives it:
// the first tab, a popup a page opens, and a page of a browser context the client creates.
// defaultViewport: null, so Puppeteer leaves the session's viewport alone (its default is 800x600).
import puppeteer from 'puppeteer-core';

const [cdpUrl, pageUrl] = process.argv.slice(2);
const seen = () => ({
  width: innerWidth, height: innerHeight, dpr: devicePixelRatio, userAgent: navigator.userAgent,
  language: navigator.language, timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
  webdriver: navigator.webdriver,
});
const browser = await puppeteer.connect({ browserWSEndpoint: cdpUrl, defaultViewport: null });
const [first] = await browser.pages();
await first.goto(`${pageUrl}?title=first`);
const result = { first: await first.evaluate(seen) };
const popupTarget = browser.waitForTarget((t) => t.url().includes('title=popup'));
await first.evaluate((url) => { window.open(url); }, `${pageUrl}?title=popup`);
const popup = await (await popupTarget).page();
await popup.waitForFunction(() => document.readyState === 'complete');
result.popup = await popup.evaluate(seen);
const context = await browser.createBrowserContext();
const other = await context.newPage();
await other.goto(`${pageUrl}?title=context`);
result.context = await other.evaluate(seen);
await context.close();
await popup.close();
await browser.disconnect();
console.log(JSON.stringify(result));
