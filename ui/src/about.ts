// The window's About section and the start-at-login switch (offered once, on the first
// start). The tray has the same switch; both go through the core's one operation, and
// `about-changed` keeps this view in step when the tray flips it.
import { listen } from "@tauri-apps/api/event";
import { type About, about, dismissStartAtLoginOffer, errorText, setStartAtLogin } from "./api";

const $ = <T extends HTMLElement>(sel: string) => document.querySelector<T>(sel)!;
const toggle = $<HTMLInputElement>("#start-at-login");
const offer = $<HTMLElement>("#start-at-login-offer");
const problem = $<HTMLParagraphElement>("#start-at-login-error");

function show(a: About) {
  $("#about-version").textContent = a.version;
  $("#about-data-dir").textContent = a.data_dir;
  $("#about-config").textContent = a.config_file;
  toggle.checked = a.start_at_login === true;
  toggle.disabled = a.start_at_login === null;
  problem.textContent = a.start_at_login_error ?? "";
  problem.hidden = a.start_at_login_error === null;
  offer.hidden = !a.offer_start_at_login;
  document.body.dataset.aboutReady = "true";
}

async function run(action: () => Promise<About>) {
  try {
    show(await action());
  } catch (e) {
    problem.textContent = errorText(e);
    problem.hidden = false;
    show(await about());
  }
}

toggle.addEventListener("change", () => void run(() => setStartAtLogin(toggle.checked)));
$("#start-at-login-yes").addEventListener("click", () => void run(() => setStartAtLogin(true)));
$("#start-at-login-no").addEventListener("click", () => void run(dismissStartAtLoginOffer));

await listen("about-changed", () => void run(about));
await run(about);
