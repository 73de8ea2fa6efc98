// The console's core: the session, the JSON API, the page router and the navigation.
// Pages register themselves (`register`) and draw with the helpers of ui.js; every figure
// they show comes from the JSON API under /v1, read with the session cookie.
import { h, clear, errorBox } from "/console/ui.js";

const pages = [];
let session = null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// A call of the JSON API. Actions carry the session's CSRF token; a 401 means the session
// has ended (log-out, idle timeout, token revoked): the log-in form is shown again.
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = session ? session.csrf_token : "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = (data && data.error) || {};
    if (response.status === 401 && path !== "/v1/session") showLogin(error.message);
    throw new ApiError(response.status, error.code || "http_error",
                       error.message || response.statusText);
  }
  return data;
}

export function can(scope) {
  return Boolean(session && session.scopes.includes(scope));
}

export function principal() {
  return session ? session.principal : null;
}

// A page: `path` is the first part of the hash (#/exceptions/12 -> "exceptions", with
// params ["12"] and the query's values), `scope` the one it needs to be listed.
export function register(page) {
  pages.push(page);
  pages.sort((a, b) => (a.order || 0) - (b.order || 0));
}

export function navigate(path) {
  if (location.hash === `#/${path}`) route();
  else location.hash = `#/${path}`;
}

function parseHash() {
  const [pathPart, queryPart = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || "overview", params: parts.slice(1),
           query: new URLSearchParams(queryPart) };
}

function drawNav(current) {
  const nav = document.getElementById("nav");
  clear(nav);
  const list = h("ul", {});
  for (const page of pages.filter((p) => !p.hidden && (!p.scope || can(p.scope)))) {
    const link = h("a", { href: `#/${page.path}` }, page.title);
    if (page.path === current) link.setAttribute("aria-current", "page");
    list.append(h("li", {}, link));
  }
  nav.append(list);
}

async function route() {
  if (!session) return;
  const { name, params, query } = parseHash();
  const page = pages.find((p) => p.path === name) || pages[0];
  drawNav(page.path);
  const main = document.getElementById("page");
  delete main.dataset.rendered;
  clear(main);
  document.title = `${page.title} — finsync`;
  main.append(h("h1", {}, page.title));
  const body = h("div", { class: "page-body" });
  main.append(body);
  if (page.scope && !can(page.scope)) {
    body.append(errorBox(new ApiError(403, "forbidden", `this page needs ${page.scope}`)));
    return;
  }
  try {
    await page.render(body, { params, query });
  } catch (error) {
    if (error.status !== 401) body.append(errorBox(error));
  }
  main.dataset.renderedAt = performance.now().toFixed(0);  // bench/console.py reads it
  main.dataset.rendered = page.path;  // the browser tests wait for this
}

function showLogin(message) {
  session = null;
  document.getElementById("who").hidden = true;
  document.querySelector(".menu-toggle").hidden = true;
  clear(document.getElementById("nav"));
  const main = document.getElementById("page");
  clear(main);
  main.append(document.getElementById("login-template").content.cloneNode(true));
  const error = document.getElementById("login-error");
  if (message) error.textContent = message;
  const form = document.getElementById("login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const token = form.elements.token.value.trim();
      await start(await api("/v1/session", { method: "POST", body: { token } }));
    } catch (failure) {
      error.textContent = failure.message;
    }
  });
  document.getElementById("login-token").focus();
  main.dataset.renderedAt = performance.now().toFixed(0);
  main.dataset.rendered = "login";
}

async function start(who) {
  session = who;
  document.getElementById("who").hidden = false;
  document.querySelector(".menu-toggle").hidden = false;
  document.getElementById("who-name").textContent =
    `${who.principal} (${who.scopes.join(", ")})`;
  await route();
}

async function logout() {
  try { await api("/v1/session", { method: "DELETE" }); } finally { showLogin(); }
}

async function boot() {
  document.getElementById("logout").addEventListener("click", logout);
  const toggle = document.querySelector(".menu-toggle");
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    document.getElementById("nav").classList.toggle("open", open);
  });
  window.addEventListener("hashchange", route);
  await import("/console/pages/index.js");
  try {
    await start(await api("/v1/session"));
  } catch (error) {
    showLogin(error.status === 401 ? "" : error.message);
  }
}

boot();
