// Drives ferlite serve's page in headless Chromium: uploads a photo and waits for the boxes, then
// starts the (fake) webcam and waits for live results. Screenshots go to OUT_DIR.
// Usage: node page.mjs <server url> <photo> <fake-camera.y4m> <out dir>
import { chromium } from "playwright-core";

const [url, photo, camera, outDir] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", `--use-file-for-fake-video-capture=${camera}`,
  ],
});
const result = {};
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  page.on("pageerror", (e) => { result.pageErrors = (result.pageErrors || []).concat(String(e)); });
  await page.goto(url);

  await page.setInputFiles("#file", photo);
  await page.waitForFunction(() => document.getElementById("faces").dataset.count !== undefined, null, { timeout: 30000 });
  result.photo = await readOverlay(page);
  await page.screenshot({ path: `${outDir}/photo.png` });

  await page.evaluate(() => { document.getElementById("faces").removeAttribute("data-count"); });
  await page.click("#camera");
  await page.waitForFunction(() => document.getElementById("faces").dataset.count !== undefined, null, { timeout: 30000 });
  // Let a few more frames go through the loop (the rate shown is over the last ten).
  await page.waitForTimeout(3000);
  result.webcam = await readOverlay(page);
  result.webcam.button = await page.textContent("#camera");
  await page.screenshot({ path: `${outDir}/webcam.png` });
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));

// What the page shows: face count, the text under the stage, and how many overlay pixels are drawn.
async function readOverlay(page) {
  return page.evaluate(() => {
    const canvas = document.getElementById("overlay");
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let drawn = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) drawn++;
    return {
      faces: Number(document.getElementById("faces").dataset.count),
      text: document.getElementById("faces").textContent,
      status: document.getElementById("status").textContent,
      framesPerSecond: Number(document.getElementById("status").dataset.framesPerSecond || 0),
      drawnPixels: drawn,
      canvas: [canvas.width, canvas.height],
    };
  });
}
