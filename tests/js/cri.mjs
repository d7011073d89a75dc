// chrome-remote-interface given the cdpUrl and nothing else ({target}); evaluates 6*7 in a page it opens.
//   cri <cdpUrl>: browser-level socket: Target.createTarget + attach, Runtime.evaluate in the page session.
//   page <webSocketDebuggerUrl of a /json/list entry>: a page-level socket: Runtime.evaluate directly.
import CDP from 'chrome-remote-interface';

const [mode, url] = process.argv.slice(2);
const client = await CDP({ target: url });
let value;
if (mode === 'cri') {
  const { targetId } = await client.Target.createTarget({ url: 'about:blank' });
  const { sessionId } = await client.Target.attachToTarget({ targetId, flatten: true });
  value = (await client.send('Runtime.evaluate', { expression: '6*7' }, sessionId)).result.value;
  await client.Target.closeTarget({ targetId });
} else {
  value = (await client.Runtime.evaluate({ expression: 'location.href + " " + 6*7' })).result.value;
}
await client.close();
console.log(JSON.stringify({ value }));
