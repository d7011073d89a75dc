// Files through a remote browser, the way a user's Puppeteer script does it (issue 14).
//   download <cdpUrl> <pageUrl> <linkUrl> [context]: click a download link (in a new browser context with
//            its own downloadBehavior when "context"), wait for Chromium to report it complete, disconnect.
//   upload <cdpUrl> <pageUrl> <path>: uploadFile(path) on the page's file input; every byte the page reads
//          (base64: crypto.subtle needs a secure context, which a test page on a plain-http address is not).
import puppeteer from 'puppeteer-core';

const [mode, cdpUrl, pageUrl, arg, extra] = process.argv.slice(2);
const browser = await puppeteer.connect({ browserWSEndpoint: cdpUrl });
let result;
if (mode === 'download') {
  const context = extra === 'context'
    ? await browser.createBrowserContext({ downloadBehavior: { policy: 'allow', downloadPath: '/tmp/puppeteer-elsewhere' } })
    : null;
  const page = await (context ?? browser).newPage();
  const cdp = await page.createCDPSession();
  if (!context) {
    // What a Puppeteer script does to choose a folder: a path on the client's machine, meaningless on the worker.
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: '/tmp/puppeteer-elsewhere', eventsEnabled: true });
  } else {
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: '/tmp/puppeteer-elsewhere', eventsEnabled: true, browserContextId: context.id });
  }
  const done = new Promise((resolve) => cdp.on('Browser.downloadProgress', (e) => { if (e.state !== 'inProgress') resolve(e.state); }));
  await page.goto(pageUrl);
  await page.evaluate((href) => { const a = document.createElement('a'); a.href = href; a.download = ''; document.body.append(a); a.click(); }, arg);
  result = { state: await done };
  if (context) await context.close(); else await page.close();
} else if (mode === 'upload') {
  const page = await browser.newPage();
  await page.goto(pageUrl);
  const input = await page.$('#f');
  await input.uploadFile(arg);
  result = await page.evaluate(async () => {
    const file = document.getElementById('f').files[0];
    const url = await new Promise((resolve) => { const r = new FileReader(); r.onload = () => resolve(r.result); r.readAsDataURL(file); });
    return { name: file.name, size: file.size, base64: url.slice(url.indexOf(',') + 1) };
  });
  await page.close();
}
await browser.disconnect();
console.log(JSON.stringify(result));
