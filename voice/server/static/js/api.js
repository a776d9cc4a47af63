// Sign-in and authenticated requests.
//
// The token is asked for once and kept in localStorage; every page load trades it for the
// HttpOnly session cookie (POST /api/session), which WebSockets and <audio> need because they
// cannot send an Authorization header. fetch() calls send the header as well.

import { h } from "./dom.js";

const TOKEN_KEY = "nextline.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function token() {
  return localStorage.getItem(TOKEN_KEY);
}

/** The server's reason: a string, or FastAPI's 422 list ("raw_rate: Input should be ..."). */
function describe(detail) {
  if (typeof detail === "string") return detail;
  if (!Array.isArray(detail)) return "";
  return detail.map((e) => `${(e.loc || []).slice(1).join(".") || "request"}: ${e.msg}`).join("; ");
}

/** JSON request to the server; throws ApiError with the server's message on failure. */
export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const auth = token() ? { Authorization: `Bearer ${token()}` } : {};
  const isFile = body instanceof Blob;
  const init = { method, credentials: "same-origin", headers: { ...auth, ...headers } };
  if (body !== undefined) {
    init.body = isFile ? body : JSON.stringify(body);
    if (!isFile) init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "the server cannot be reached");
  }
  if (!response.ok) {
    const detail = await response.json().then((d) => d.detail, () => null);
    throw new ApiError(response.status, describe(detail) || response.statusText);
  }
  return response.status === 204 ? null : response.json();
}

/** Sign in with a stored token, a #token=... link, or by asking; resolves to {name, role, tenant}.
 *
 * A link's token is taken out of the address at once (history.replaceState), so it stays in no
 * history entry. With no token stored, the link signs in (the first sign-in `voice demo` and
 * `voice agents add` links are for). A link that would replace the token stored here, someone
 * else's, is followed only when the person confirms it: anyone can send a link, and one signed in
 * silently as its sender would put what this person does next (an upload, notes) in the
 * sender's account and tenant. */
export async function signIn() {
  const fromLink = takeLinkToken();
  if (fromLink && fromLink !== token()) {
    if (!token() || (await confirmSwitch(fromLink))) localStorage.setItem(TOKEN_KEY, fromLink);
  }
  if (token()) {
    try {
      return await api("/api/session", { method: "POST", body: { token: token() } });
    } catch (err) {
      if (err.status !== 401 && err.status !== 422) throw err;
      localStorage.removeItem(TOKEN_KEY);
    }
  }
  return askForToken();
}

/** The token of a #token=... link, removed from the address (and so from history). */
function takeLinkToken() {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink !== null) history.replaceState(null, "", location.pathname + location.search);
  return fromLink ? fromLink.trim() : null;
}

/** Who a token signs in as (GET /api/me with it; no cookie is set), or null when it is not valid. */
async function whoIs(candidate) {
  try {
    return await api("/api/me", { headers: { Authorization: `Bearer ${candidate}` } });
  } catch (err) {
    if (err.status === 401 || err.status === 422) return null;
    return undefined; // not known (the server cannot be reached): still asked
  }
}

function describePerson(person) {
  return `${person.name} (${person.role}${person.tenant ? `, tenant ${person.tenant}` : ""})`;
}

/** Whether to replace the stored token with a link's: asks, naming who the link signs in as. */
async function confirmSwitch(fromLink) {
  const [current, linked] = await Promise.all([whoIs(token()), whoIs(fromLink)]);
  if (linked === null) return false; // a link with a token that is not valid changes nothing
  if (current && linked && current.name === linked.name) return true; // a new token of the same person
  const them = linked ? describePerson(linked) : "another user";
  const you = current ? `You are signed in here as ${describePerson(current)}.`
    : "Your saved sign-in on this computer is no longer valid.";
  return window.confirm(
    `This link signs you in as another user: ${them}.\n\n${you}\n\n` +
    `Sign in as ${linked ? linked.name : "that user"} instead? Choose Cancel unless you asked for this ` +
    "link: what you do next (uploads, notes) would be done in that user's account.");
}

/** Forget the token and the cookie, then reload to the sign-in dialog. */
export async function signOut() {
  localStorage.removeItem(TOKEN_KEY);
  await fetch("/api/session", { method: "DELETE", credentials: "same-origin" }).catch(() => null);
  location.reload();
}

function askForToken() {
  return new Promise((resolve) => {
    const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "off", required: true,
      spellcheck: "false", "aria-describedby": "signin-help signin-error" });
    const error = h("p", { class: "form-error", id: "signin-error", role: "alert" });
    const form = h("form", { method: "dialog" },
      h("h1", { id: "signin-title" }, "Sign in to nextline"),
      h("p", { id: "signin-help" }, "Paste the access token you were given (",
        h("code", {}, "voice agents add NAME"), " prints one). It is remembered on this computer."),
      h("label", { class: "field", for: "token" }, "Access token", input),
      error,
      h("div", { class: "actions" }, h("button", { class: "btn primary", type: "submit" }, "Sign in")));
    const dialog = h("dialog", { class: "signin", "aria-labelledby": "signin-title" }, form);
    dialog.addEventListener("cancel", (event) => event.preventDefault()); // nothing works without a token
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        const me = await api("/api/session", { method: "POST", body: { token: input.value.trim() } });
        localStorage.setItem(TOKEN_KEY, input.value.trim());
        dialog.close();
        dialog.remove();
        resolve(me);
      } catch (err) {
        error.textContent = err.status === 401 || err.status === 422 ? "That token is not valid." : err.message;
        input.select();
      }
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}

/** Fill the top bar: which pages this person may open, who is signed in, sign out. */
export function renderTopbar(me, page) {
  const nav = document.querySelector(".nav");
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    if (link.dataset.role === "supervisor" && me.role !== "supervisor") link.hidden = true;
  }
  const who = document.querySelector(".who");
  who.replaceChildren(
    h("span", {}, h("strong", {}, me.name), ` · ${me.role}${me.tenant ? ` · ${me.tenant}` : ""}`),
    h("button", { class: "btn ghost small", type: "button", onclick: signOut }, "Sign out"));
}
