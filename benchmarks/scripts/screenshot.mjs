// Headless-browser screenshot of a page (the MLflow run page): node screenshot.mjs URL OUT.png [clickText ...]
// Needs `npm install puppeteer-core @sparticuz/chromium` (a Chromium build shipped through the npm registry);
// benchmarks/scripts/mlflow_screenshot.py installs them into a temporary folder and runs this file.
import chromium from "@sparticuz/chromium";
import puppeteer from "puppeteer-core";

const [url, out, ...clicks] = process.argv.slice(2);
const browser = await puppeteer.launch({ args: chromium.args, executablePath: await chromium.executablePath(), headless: true });
try {
  const page = await browser.newPage();
  await page.setViewport({ width: Number(process.env.SHOT_WIDTH || 1440), height: Number(process.env.SHOT_HEIGHT || 1000),
    deviceScaleFactor: 1 });
  await page.goto(url, { waitUntil: "networkidle0", timeout: 60000 });
  await new Promise((r) => setTimeout(r, 2000));
  const close = await page.$('button[aria-label="Close"]');  // MLflow 3's assistant side panel, when it opens
  if (close) await close.click().catch(() => {});
  for (const text of clicks) {
    const handle = await page.waitForFunction(
      (t) => [...document.querySelectorAll("span,a,div,button,label,li")].reverse().find((e) =>
        [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim() === t)),
      { timeout: 30000 }, text).catch(async (err) => {
        await page.screenshot({ path: `${out}.failed.png` });
        throw new Error(`no element with the text ${JSON.stringify(text)} (page saved to ${out}.failed.png): ${err}`);
      });
    await handle.asElement().click();
    await new Promise((r) => setTimeout(r, 2500));
  }
  await new Promise((r) => setTimeout(r, 1500));
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
