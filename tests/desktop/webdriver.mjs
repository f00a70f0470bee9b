// A minimal W3C WebDriver client over fetch, for tauri-driver (which proxies to
// WebKitWebDriver). Only what the desktop e2e test needs; no dependencies.

const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";

export class WebDriver {
  constructor(base) {
    this.base = base;
    this.id = null;
  }

  async cmd(method, path, body) {
    const url = this.id ? `${this.base}/session/${this.id}${path}` : `${this.base}${path}`;
    const res = await fetch(url, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) {
      const v = json.value ?? {};
      throw new Error(`WebDriver ${method} ${path}: ${res.status} ${v.error ?? ""} ${v.message ?? ""}`);
    }
    return json.value;
  }

  async start(application, args) {
    const v = await this.cmd("POST", "/session", {
      capabilities: {
        alwaysMatch: { browserName: "wry", "tauri:options": { application, args } },
      },
    });
    this.id = v.sessionId;
    return v;
  }

  async quit() {
    if (!this.id) return;
    try {
      await this.cmd("DELETE", "");
    } finally {
      this.id = null;
    }
  }

  handles() { return this.cmd("GET", "/window/handles"); }
  handle() { return this.cmd("GET", "/window"); }
  switchTo(handle) { return this.cmd("POST", "/window", { handle }); }
  title() { return this.cmd("GET", "/title"); }
  screenshot() { return this.cmd("GET", "/screenshot").then((b64) => Buffer.from(b64, "base64")); }
  exec(script, args = []) { return this.cmd("POST", "/execute/sync", { script, args }); }
  execAsync(script, args = []) { return this.cmd("POST", "/execute/async", { script, args }); }

  async find(css) {
    const v = await this.cmd("POST", "/element", { using: "css selector", value: css });
    return v[ELEMENT];
  }
  async findAll(css) {
    const v = await this.cmd("POST", "/elements", { using: "css selector", value: css });
    return v.map((e) => e[ELEMENT]);
  }
  text(el) { return this.cmd("GET", `/element/${el}/text`); }
  sendKeys(el, text) { return this.cmd("POST", `/element/${el}/value`, { text }); }
  click(el) { return this.cmd("POST", `/element/${el}/click`, {}); }
}
