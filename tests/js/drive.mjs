// Drives a session the way a user's backend would: puppeteer.connect on the cdpUrl, open a page,
// read what it shows, then disconnect (never close: the remote browser must stay up).
import puppeteer from 'puppeteer-core';

const [cdpUrl, pageUrl] = process.argv.slice(2);
const browser = await puppeteer.connect({ browserWSEndpoint: cdpUrl });
const before = (await browser.pages()).map((p) => p.url());
const page = await browser.newPage();
await page.goto(pageUrl);
const result = {
  pagesBefore: before,
  title: await page.title(),
  heading: await page.$eval('h1', (h) => h.textContent),
  webdriver: await page.evaluate(() => navigator.webdriver),
  version: await browser.version(),
};
await page.close();
await browser.disconnect();
console.log(JSON.stringify(result));
