// Uploads a file to Reelflow with the real tus-js-client, through a proxy
// that cuts the connection once the upload is under way, the way a flaky
// network does. The client must resume from the offset the server reports
// and finish. Prints one JSON line: the upload URL, how many bytes went
// through the proxy, and how many times the connection was cut.
//
//   node tus_upload.mjs ENDPOINT TOKEN VIDEO_ID FILE
import { readFileSync } from "node:fs";
import net from "node:net";
import * as tus from "tus-js-client";

const [endpoint, token, videoId, file] = process.argv.slice(2);
const target = new URL(endpoint);
const data = readFileSync(file);

// Cut the first connection that has carried half the file.
let cuts = 0;
let forwarded = 0;
const proxy = net.createServer((client) => {
  const upstream = net.connect(Number(target.port), target.hostname);
  let carried = 0;
  client.on("data", (chunk) => {
    carried += chunk.length;
    forwarded += chunk.length;
    if (cuts === 0 && carried > data.length / 2) {
      cuts += 1;
      client.destroy();
      upstream.destroy();
      return;
    }
    upstream.write(chunk);
  });
  upstream.on("data", (chunk) => client.write(chunk));
  upstream.on("error", () => client.destroy());
  client.on("error", () => upstream.destroy());
  upstream.on("end", () => client.end());
  client.on("end", () => upstream.end());
});
await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
const via = `http://127.0.0.1:${proxy.address().port}${target.pathname}`;

const url = await new Promise((resolve, reject) => {
  const upload = new tus.Upload(data, {
    endpoint: via,
    headers: { Authorization: `Bearer ${token}` },
    metadata: { video_id: videoId, filename: "clip.mp4", filetype: "video/mp4" },
    retryDelays: [0, 200, 500, 1000, 2000],
    // The Location the server gives is a path; keep using the proxy.
    onError: reject,
    onSuccess: () => resolve(upload.url),
  });
  upload.start();
});
proxy.close();
console.log(JSON.stringify({ url, forwarded, cuts }));
