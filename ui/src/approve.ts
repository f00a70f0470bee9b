// An approval window: one waiting call to an "ask each time" tool. The window's label
// (`approve-<id>`) names the call, so the page never handles the id itself. No answer
// before the timeout denies the call.
import { answerToolApproval, errorText, toolApprovalDetails } from "./api";

const $ = <T extends HTMLElement>(sel: string) => document.querySelector<T>(sel)!;
const deny = $<HTMLButtonElement>("#deny");
const buttons = ["#deny", "#once", "#hour", "#always"].map((s) => $<HTMLButtonElement>(s));
const errorBox = $<HTMLParagraphElement>("#error");

// Focus starts on Deny: Enter on a window that popped up unexpectedly must not allow.
deny.focus();

async function answer(a: "once" | "hour" | "always" | "deny") {
  for (const b of buttons) b.disabled = true;
  try {
    await answerToolApproval(a); // the shell closes this window
  } catch (e) {
    errorBox.textContent = errorText(e);
    errorBox.hidden = false;
  }
}

deny.addEventListener("click", () => void answer("deny"));
$("#once").addEventListener("click", () => void answer("once"));
$("#hour").addEventListener("click", () => void answer("hour"));
$("#always").addEventListener("click", () => void answer("always"));

try {
  const v = await toolApprovalDetails();
  $("#headline").textContent = `Allow “${v.client_name}” to call ${v.tool}?`;
  $("#client").textContent = v.client_name;
  $("#upstream").textContent = v.upstream;
  $("#tool").textContent = v.tool;
  $("#arguments").textContent = v.arguments;
  let left = v.timeout_secs;
  const tick = () => {
    $("#countdown").textContent = `Denied automatically in ${left} s without an answer.`;
    left = Math.max(0, left - 1);
  };
  tick();
  setInterval(tick, 1000);
  document.body.dataset.ready = "true";
} catch (e) {
  for (const b of buttons.slice(1)) b.disabled = true;
  errorBox.textContent = `This call is no longer waiting (${errorText(e)}).`;
  errorBox.hidden = false;
}
deny.focus();
