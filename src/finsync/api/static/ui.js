// Drawing helpers shared by every page. Data is only ever put in the page as text nodes
// (never as HTML), so a customer name or a payload cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (value === true) {
      node.setAttribute(key, "");
    } else {
      node.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

const minorUnits = new Map();

function minorOf(currency) {
  if (!minorUnits.has(currency)) {
    let digits = 2;
    try {
      digits = new Intl.NumberFormat("en-US", { style: "currency", currency })
        .resolvedOptions().maximumFractionDigits;
    } catch { /* an unknown code: two places */ }
    minorUnits.set(currency, digits);
  }
  return minorUnits.get(currency);
}

// An amount (a decimal string, as the API gives it) in its currency's format: grouped by
// thousands, at least the currency's minor units (ISO 4217, from Intl), and its code. The
// string is never turned into a float.
export function money(amount, currency) {
  if (amount === null || amount === undefined || amount === "") return "";
  const text = String(amount);
  const negative = text.startsWith("-");
  const body = grouped(text.replace(/^-/, ""), currency ? minorOf(currency) : 0);
  return `${negative ? "-" : ""}${body}${currency ? ` ${currency}` : ""}`;
}

// The decimal string grouped by thousands, padded to `minor` places.
function grouped(text, minor) {
  let [whole, fraction = ""] = text.split(".");
  whole = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  fraction = fraction.padEnd(minor, "0");
  return fraction ? `${whole}.${fraction}` : whole;
}

// A date or timestamp shown as ISO (timestamps in UTC, to the second).
export function iso(value) {
  if (!value) return "";
  const text = String(value);
  return text.length > 10 ? text.replace("T", " ").replace(/(\.\d+)?(\+00:00|Z)$/, "Z") : text;
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Number(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400 * 2) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

function csvCell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

// A CSV file of `rows` (objects) with `columns`, offered as a download link.
export function csvLink(name, columns, rows) {
  const lines = [columns.map((c) => csvCell(c.label)).join(",")];
  for (const row of rows) {
    lines.push(columns.map((c) => csvCell(c.csv ? c.csv(row) : row[c.key])).join(","));
  }
  const blob = new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
  return h("a", { class: "csv", href: URL.createObjectURL(blob), download: `${name}.csv` },
           `Download ${name}.csv`);
}

// A table of `rows`. A column: { key, label, numeric, render(row) -> node|text,
// csv(row) -> text }. Numeric columns are right-aligned. With `csv`, a download link of
// the same rows. With `empty`, what to show when there are no rows.
export function table({ caption, columns, rows, csv, empty: emptyText, rowAttrs }) {
  if (!rows.length && emptyText) return empty(emptyText);
  const head = h("tr", {}, columns.map((c) => h("th", {
    scope: "col", class: c.numeric ? "num" : undefined }, c.label)));
  const body = rows.map((row) => h("tr", rowAttrs ? rowAttrs(row) : {}, columns.map((c) => {
    const value = c.render ? c.render(row) : row[c.key];
    return h("td", { class: c.numeric ? "num" : undefined }, value);
  })));
  const wrap = h("div", { class: "table-wrap" },
                 h("table", {}, caption ? h("caption", {}, caption) : null,
                   h("thead", {}, head), h("tbody", {}, body)));
  return csv ? h("div", { class: "table-block" }, wrap, csvLink(csv, columns, rows)) : wrap;
}

// An empty state: what is (not) there and what to do next.
export function empty(message, next) {
  return h("div", { class: "empty", role: "status" }, h("p", {}, message),
           next ? h("p", { class: "next" }, next) : null);
}

export function errorBox(error) {
  const code = error.code ? ` (${error.code})` : "";
  return h("div", { class: "error-box", role: "alert" }, `${error.message}${code}`);
}

export function section(title, ...children) {
  return h("section", { class: "card", "aria-label": title }, h("h2", {}, title), children);
}

// A labelled control: every input of the console has its label.
export function field(label, control) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

export function select(name, options, value) {
  return h("select", { name }, options.map(([v, text]) =>
    h("option", { value: v, selected: v === value }, text)));
}

let plotly = null;

// plotly.js, loaded on the first chart (it is large; pages without charts never load it).
export function loadPlotly() {
  if (!plotly) {
    plotly = new Promise((resolve, reject) => {
      const script = h("script", { src: "/console/vendor/plotly.min.js" });
      script.addEventListener("load", () => resolve(window.Plotly));
      script.addEventListener("error", () => reject(new Error("the chart library did not load")));
      document.head.append(script);
    });
  }
  return plotly;
}

// A chart with its data as a table and a CSV download beside it. `traces` and `layout`
// are plotly's; `data` is { columns, rows, csv } for the table.
export function chart({ title, traces, layout = {}, data }) {
  const plot = h("div", { class: "chart", role: "img", "aria-label": title });
  const details = h("details", { class: "chart-data" }, h("summary", {}, `${title}: data`),
                    table(data));
  const block = h("figure", { class: "chart-block" }, h("figcaption", {}, title), plot,
                  details);
  loadPlotly().then((Plotly) => Plotly.newPlot(plot, traces, {
    margin: { t: 10, r: 10, b: 40, l: 60 }, autosize: true, height: 280,
    legend: { orientation: "h" }, ...layout,
  }, { displaylogo: false, responsive: true })).then(() => {
    plot.dataset.drawnAt = performance.now().toFixed(0);
    plot.dataset.drawn = "true";
  }).catch((error) => plot.replaceWith(errorBox(error)));
  return block;
}

// A form that asks for the reason an action is recorded with, then runs `act(reason)`;
// its outcome (or refusal, with the reason the API gave) is shown in the form.
export function actionForm(label, act, { needsReason = true, extra = [] } = {}) {
  const reason = h("textarea", { name: "reason", rows: 2, required: needsReason });
  const status = h("p", { class: "action-status", role: "status" });
  const button = h("button", { type: "submit" }, label);
  const form = h("form", { class: "action" }, extra,
                 needsReason ? field(`Reason for “${label}”`, reason) : null, button, status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    status.textContent = "…";
    status.className = "action-status";
    try {
      status.textContent = await act(reason.value.trim());
      status.classList.add("ok");
    } catch (error) {
      status.textContent = `${error.message}${error.code ? ` (${error.code})` : ""}`;
      status.classList.add("refused");
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// A job's progress, polled until it has finished; `done(job)` is called once at the end.
export function jobProgress(api, job, done) {
  const bar = h("progress", { max: 1, value: 0 });
  const label = h("span", { class: "job-label" }, "starting…");
  const box = h("div", { class: "job", role: "status", "aria-live": "polite" },
                field("Progress", bar), label);
  const poll = async () => {
    const now = await api(`/v1/jobs/${encodeURIComponent(job.id)}`);
    bar.max = Math.max(now.total, 1);
    bar.value = now.total ? now.done : 0;
    label.textContent = now.status === "running"
      ? `${now.stage || "running"} ${now.total ? `${now.done}/${now.total}` : ""}`
      : now.status === "done" ? "finished" : `failed: ${now.error && now.error.message}`;
    if (now.status === "running") setTimeout(poll, 300);
    else { box.dataset.finished = now.status; done(now); }
  };
  setTimeout(poll, 100);
  return box;
}
