// Settings → Alerts. Vanilla JS on the REST API with the pasted API key.
// Everything from the API is put in the page as text (textContent, value,
// text nodes): no markup is ever built from API data.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const KEY_STORE = "exo-alerts-api-key";
  const TERMINAL = new Set(["delivered", "dead", "endpoint_gone"]);
  const state = {
    webhooks: [], rules: [], eventTypes: [], kinds: [], groupBy: [], readOnly: false,
    ready: false, // the key was accepted and the lists loaded
    groups: null, // {rule, cursor}: the rule whose groups are shown
    history: null, // {kind: "rule"|"webhook", id, name, cursor}
    dlCursor: "", auditCursor: "", testPoll: null,
    pageSize: 50, webhooksPage: 0, rulesPage: 0,
  };

  // h builds an element; string and number children become text nodes.
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k in el && typeof el[k] !== "string") el[k] = v;
      else el.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const td = (...children) => h("td", null, ...children);
  const badge = (text, cls) => h("span", { class: "badge " + (cls || text) }, text);
  function fmtTime(s) {
    if (!s) return "—";
    const d = new Date(s);
    return isNaN(d) ? String(s) : d.toLocaleString();
  }
  function timeEl(s) { return h("time", { datetime: s || "", title: s || "" }, fmtTime(s)); }
  function writeButton(label, cls, onclick) {
    return h("button", { type: "button", class: "write " + cls, disabled: state.readOnly, onclick }, label);
  }
  function plainButton(label, cls, onclick) { return h("button", { type: "button", class: cls, onclick }, label); }

  // copyText puts text on the clipboard; where the browser refuses, it
  // selects el's text so Ctrl+C copies it. It reports what happened.
  async function copyText(text, el) {
    try {
      await navigator.clipboard.writeText(text);
      return "copied";
    } catch (e) {
      if (el) {
        const r = document.createRange();
        r.selectNodeContents(el);
        const sel = window.getSelection();
        sel.removeAllRanges(); sel.addRange(r);
      }
      return "selected: press Ctrl+C";
    }
  }
  // copyButton copies text (an id, an alert id) and says so on itself.
  function copyButton(text, what, el) {
    const b = h("button", { type: "button", class: "copy", title: "Copy " + (what || "") + " " + text, "aria-label": "Copy " + (what || text),
      dataset: { copy: text } }, "Copy");
    b.addEventListener("click", async () => {
      const said = await copyText(text, el);
      b.textContent = said === "copied" ? "Copied" : "Select";
      b.title = said;
      b.classList.add("copied");
      setTimeout(() => { b.textContent = "Copy"; b.classList.remove("copied"); }, 1500);
    });
    return b;
  }
  // idCode is an id in code with its copy button.
  function idCode(id, what) {
    const c = h("code", { class: "id" }, id);
    return h("span", { class: "id-line" }, c, copyButton(id, what, c));
  }
  // actionsCell holds a row's buttons; they wrap inside the cell.
  function actionsCell(...buttons) { return h("td", { class: "actions" }, h("div", { class: "buttons-row" }, ...buttons)); }
  // emptyRow is the row of an empty list: what it means and what to do.
  function emptyRow(colspan, text, next) {
    return h("tr", { class: "empty-row" }, h("td", { colspan, class: "empty" }, text, next ? h("span", { class: "next" }, next) : null));
  }
  // ruleEndpoint is the endpoint of a rule (or of the notice settings):
  // endpoint_id, or its deprecated alias webhook_endpoint_id (the page sends
  // endpoint_id and reads it first; the server answers both).
  const ruleEndpoint = (r) => r.endpoint_id || r.webhook_endpoint_id || "";

  // --- API ---------------------------------------------------------------

  class APIError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || ("HTTP " + status));
      this.status = status;
      this.problem = problem || {};
    }
  }

  async function api(method, path, opts) {
    opts = opts || {};
    const headers = { "Authorization": "Bearer " + $("key").value.trim(), "Accept": "application/json, application/problem+json" };
    if (opts.etag) headers["If-Match"] = opts.etag;
    let body;
    if (opts.body !== undefined) {
      headers["Content-Type"] = opts.contentType || "application/json";
      body = JSON.stringify(opts.body);
    }
    let res;
    try {
      res = await fetch(path, { method, headers, body, cache: "no-store", credentials: "omit" });
    } catch (e) {
      throw new APIError(0, { title: "Network error", detail: "the control plane did not answer: " + e.message });
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { detail: text.slice(0, 500) }; }
    }
    if (!res.ok) {
      if (res.status === 403) setReadOnly((data && data.detail) || "this API key may not make changes");
      throw new APIError(res.status, data);
    }
    return { data: data || {}, etag: res.headers.get("ETag") || "" };
  }
  const qs = (params) => {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.set(k, v);
    const s = u.toString();
    return s ? "?" + s : "";
  };

  // --- problems ----------------------------------------------------------

  function clearFieldErrors(form) {
    if (!form) return;
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    for (const el of form.querySelectorAll(".field-error")) el.remove();
  }
  function clearProblem(box, form) { box.replaceChildren(); clearFieldErrors(form); }

  // showProblem puts an API problem (RFC 9457) in box, one line per
  // errors[] entry naming its location, and marks the form fields named.
  // onReload, when given, is offered on a 412.
  function showProblem(box, err, form, onReload) {
    clearProblem(box, form);
    const p = (err && err.problem) || {};
    const status = err && err.status;
    let head;
    if (status === 412) {
      head = "Changed by someone else — reload to see the current version, then make your change again.";
    } else if (status === 403) {
      head = "403 Forbidden: " + (p.detail || "this API key may not make changes") + ". Use an admin key to change anything.";
    } else if (status === 401) {
      head = "401 Unauthorized: " + (p.detail || "invalid API key");
    } else if (err instanceof APIError) {
      head = (status ? status + " " : "") + (p.title || "Error") + (p.detail && p.detail !== p.title ? ": " + p.detail : "");
    } else {
      head = "Error: " + (err && err.message ? err.message : String(err));
    }
    box.append(h("div", { class: "problem-head" }, head));
    const list = (p.errors || []).filter(Boolean);
    if (list.length) {
      box.append(h("ul", null, list.map((e) =>
        h("li", null, h("code", null, e.location || "request"), ": ", e.message || "invalid",
          e.value !== undefined && e.value !== null && typeof e.value !== "object" ? h("span", { class: "muted" }, " (got ", JSON.stringify(e.value), ")") : null))));
    }
    if (status === 412 && onReload) {
      box.append(h("div", null, h("button", { type: "button", class: "reload", onclick: onReload }, "Reload")));
    }
    if (form) {
      for (const e of list) {
        const m = /^body\.([A-Za-z_]+)/.exec(e.location || "");
        const field = m && form.elements.namedItem(m[1]);
        if (!field || !field.setAttribute) continue;
        field.setAttribute("aria-invalid", "true");
        const msg = h("span", { class: "field-error", dataset: { field: m[1] } }, e.location + ": " + (e.message || "invalid"));
        field.insertAdjacentElement("afterend", msg);
      }
    }
  }
  function note(box, ...parts) { box.replaceChildren(...parts); }

  function setReadOnly(detail) {
    for (const el of document.querySelectorAll(".write")) el.disabled = true;
    if (state.readOnly) return;
    state.readOnly = true;
    const b = $("readonly-banner");
    b.textContent = "Read-only: " + detail + ". Buttons that change anything are disabled; paste an admin key to make changes.";
    b.hidden = false;
  }
  function resetReadOnly() {
    state.readOnly = false;
    $("readonly-banner").hidden = true;
    for (const el of document.querySelectorAll(".write")) el.disabled = false;
  }

  // --- loading -----------------------------------------------------------

  async function listAll(path) {
    const items = [];
    let cursor = "";
    for (let i = 0; i < 50; i++) {
      const { data } = await api("GET", path + qs({ limit: 200, cursor }));
      items.push(...(data.items || []));
      cursor = data.next_cursor || "";
      if (!cursor) break;
    }
    return items;
  }

  async function loadAll() {
    $("key-problem").replaceChildren();
    try {
      // Who the key is, first: a viewer sees read-only before trying a write.
      const { data: me } = await api("GET", "/v1/me");
      if (!me.can_write) setReadOnly("this API key is read-only (role " + me.role + ")");
      await loadEventTypes();
      await Promise.all([loadWebhooks(), loadRules(), loadFiring()]);
      $("key-status").textContent = "tenant " + me.tenant_id + " (" + me.role + " key " + me.key_name + "): " +
        state.webhooks.length + " endpoints, " + state.rules.length + " rules";
      $("key-howto").hidden = true;
      state.ready = true;
    } catch (e) {
      $("key-status").textContent = "";
      showProblem($("key-problem"), e);
      $("key-howto").hidden = false;
      return;
    }
    loadOverview();
    deliveriesPager.first();
    startRefresh();
    loadDeadLetters(false);
    loadAudit(false);
    loadQuota();
    loadNotices(false);
    if (state.history) loadHistory(false);
  }

  // --- health notices (controlplane/notices.go) -----------------------------

  const NOTICE_KINDS = ["rule_disabled", "endpoint_unhealthy", "dead_letters", "quota_exceeded"];
  let noticeCursor = "";
  // noticeFormEdited: the user changed the notice settings form and has not
  // saved it; a refresh (e.g. after acknowledging a notice) keeps their
  // choice instead of putting back what is stored.
  let noticeFormEdited = false;
  $("ns-endpoint").addEventListener("change", () => { noticeFormEdited = true; });
  $("ns-kinds").addEventListener("change", () => { noticeFormEdited = true; });

  // loadNotices fills the banner (unacknowledged open notices), the list
  // and the notice endpoint picker.
  async function loadNotices(more) {
    const box = $("nt-problem");
    clearProblem(box);
    try {
      const { data: open } = await api("GET", "/v1/notices" + qs({ acknowledged: "false", state: "open", limit: 200 }));
      const n = (open.items || []).length;
      const banner = $("notices-banner");
      banner.hidden = n === 0;
      banner.replaceChildren(n === 0 ? "" : h("span", null, n + (n === 1 ? " health notice" : " health notices") + " not acknowledged" +
        (open.next_cursor ? " (and more)" : "") + ": " + open.items[0].title + " ", h("a", { href: "#notices-section" }, "See the notices")));
      const { data } = await api("GET", "/v1/notices" + qs({ state: $("nt-state").value, acknowledged: $("nt-unacked").checked ? "false" : "",
        cursor: more ? noticeCursor : "", limit: 50 }));
      const rows = (data.items || []).map((x) => h("tr", { dataset: { noticeId: x.id } },
        td(timeEl(x.created_at)),
        td(badge(x.kind, "notice-kind")),
        td(h("span", { class: "notice-title" }, x.title),
          x.rule_id ? h("div", { class: "muted" }, "rule: " + ruleName(x.rule_id)) : null,
          x.endpoint_id ? h("div", { class: "muted" }, "endpoint: " + webhookName(x.endpoint_id)) : null),
        td(String(x.count)),
        td(x.resolved_at ? h("span", null, "resolved ", timeEl(x.resolved_at)) : badge("open", "retry")),
        td(x.acknowledged_at ? h("span", null, timeEl(x.acknowledged_at), h("div", { class: "muted" }, x.acknowledged_by || "")) :
          h("span", { class: "muted" }, "no")),
        actionsCell(x.acknowledged_at ? null : writeButton("Acknowledge", "ack-notice", () => acknowledgeNotice(x)))));
      if (more) $("notices").append(...rows);
      else $("notices").replaceChildren(...(rows.length ? rows : [emptyRow(7, "No notices.", "Nothing needs your attention. Notices appear here when an endpoint keeps failing, a rule is disabled or alerts are dead-lettered.")]));
      noticeCursor = data.next_cursor || "";
      $("nt-more").hidden = !noticeCursor;
      const { data: st } = await api("GET", "/v1/notice-settings");
      const sel = $("ns-endpoint");
      const chosen = noticeFormEdited ? sel.value : ruleEndpoint(st);
      const kinds = noticeFormEdited ? [...document.querySelectorAll("#ns-kinds input[name=kinds]:checked")].map((el) => el.value) : st.kinds || [];
      sel.replaceChildren(h("option", { value: "" }, "none (API and dashboard only)"),
        ...state.webhooks.filter((w) => w.is_active).map((w) => h("option", { value: w.id }, w.name + " (" + w.kind + ")")));
      sel.value = chosen;
      $("ns-kinds").replaceChildren(...NOTICE_KINDS.map((k) => h("label", null,
        h("input", { type: "checkbox", name: "kinds", value: k, checked: kinds.includes(k) }), " " + k + " ")));
    } catch (e) {
      showProblem(box, e);
    }
  }

  async function acknowledgeNotice(x) {
    const box = $("nt-problem");
    clearProblem(box);
    try {
      await api("POST", "/v1/notices/" + encodeURIComponent(x.id) + "/acknowledge");
      note($("nt-note"), "Acknowledged: " + x.title);
      await loadNotices(false);
      loadAudit(false);
    } catch (e) {
      showProblem(box, e);
    }
  }

  async function saveNoticeSettings(ev) {
    ev.preventDefault();
    const f = ev.target;
    const box = $("nt-problem");
    clearProblem(box, f);
    const kinds = [...f.querySelectorAll("input[name=kinds]:checked")].map((el) => el.value);
    try {
      const { data } = await api("PUT", "/v1/notice-settings", { body: { endpoint_id: f.elements.endpoint_id.value || null, kinds } });
      noticeFormEdited = false;
      note($("nt-note"), ruleEndpoint(data) ? "Notices (" + (data.kinds.join(", ") || "no kind") + ") go to " + webhookName(ruleEndpoint(data)) + "." :
        "Notices are no longer delivered to an endpoint.");
      loadAudit(false);
    } catch (e) {
      showProblem(box, e, f);
    }
  }
  $("nt-state").addEventListener("change", () => loadNotices(false));
  $("nt-unacked").addEventListener("change", () => loadNotices(false));
  $("nt-refresh").addEventListener("click", () => loadNotices(false));
  $("nt-more").addEventListener("click", () => loadNotices(true));
  $("notice-settings-form").addEventListener("submit", saveNoticeSettings);

  // The delivery quota tile (GET /v1/quota): the cap, and what it
  // suppressed lately. Not loaded is not a problem of the page.
  async function loadQuota() {
    const tile = $("quota-tile");
    try {
      const { data: q } = await api("GET", "/v1/quota");
      const cap = q.limit_source === "none" ? "no cap" :
        q.limit_per_minute === 0 ? "unlimited (set by your operator)" :
        q.limit_per_minute + " alerts per minute" + (q.limit_source === "operator" ? " (set by your operator)" : " (default)");
      tile.textContent = "Delivery quota: " + cap + " · suppressed: " + q.suppressed_last_hour + " in the last hour, " +
        q.suppressed_last_24h + " in 24 hours";
      tile.classList.toggle("warn", q.suppressed_last_hour > 0);
      tile.hidden = false;
    } catch (e) {
      tile.hidden = true;
    }
  }

  async function loadEventTypes() {
    if (state.eventTypes.length) return;
    const { data } = await api("GET", "/v1/event-types");
    state.eventTypes = data.items || [];
    state.kinds = data.kinds || [];
    state.groupBy = data.group_by || [];
    $("rf-group-by-help").replaceChildren(
      h("div", null, "Comma-separated paths; each combination of their values is watched on its own (empty: one group)."),
      h("details", null, h("summary", null, "Paths (" + state.groupBy.length + ")"),
        h("ul", { class: "field-list" }, state.groupBy.map((g) => h("li", null, h("code", null, g.path), " — ", g.description,
          g.event_types && g.event_types.length < 5 ? h("span", { class: "muted" }, " (" + g.event_types.join(", ") + " only)") : null)))));
    ruleKindChanged();
  }

  // ruleKindChanged shows the rule form's fields of the chosen kind, the
  // event types it may watch, and its explanation with a worked example.
  function ruleKindChanged() {
    const kind = $("rf-kind").value || "per_event";
    for (const el of $("rule-form").querySelectorAll("[data-kinds]")) el.hidden = !el.dataset.kinds.split(" ").includes(kind);
    const sel = $("rf-event");
    const keep = sel.value;
    const types = state.eventTypes.filter((t) => !t.rule_kinds || t.rule_kinds.includes(kind));
    sel.replaceChildren(...types.map((t) => h("option", { value: t.type }, t.type)));
    if (types.some((t) => t.type === keep)) sel.value = keep;
    eventTypeChanged();
    const k = state.kinds.find((x) => x.kind === kind);
    const help = $("rf-kind-help");
    if (!k) { help.replaceChildren(); return; }
    help.replaceChildren(
      h("div", { class: "kind-description" }, k.description),
      h("details", { class: "kind-example" },
        h("summary", null, "Worked example"),
        h("p", null, k.explanation),
        h("pre", null, JSON.stringify(k.example, null, 2)),
        h("button", { type: "button", class: "use-example", onclick: () => useKindExample(k) }, "Fill the form with this example")));
  }

  // useKindExample fills the form from a kind's example create document
  // (the endpoint stays the one chosen).
  function useKindExample(k) {
    const f = $("rule-form");
    const ex = k.example || {};
    $("rf-kind").value = k.kind;
    ruleKindChanged();
    if (ex.event_type) f.elements.event_type.value = ex.event_type;
    eventTypeChanged();
    const set = (name, v) => { if (f.elements[name]) f.elements[name].value = v === undefined || v === null ? "" : v; };
    for (const name of ["name", "condition", "window", "threshold", "success_ratio_below", "min_runs", "max_groups", "hold", "repeat_interval", "severity"]) {
      if (ex[name] !== undefined) set(name, ex[name]);
    }
    set("group_by", (ex.group_by || []).join(", "));
  }

  async function loadWebhooks() {
    state.webhooks = await listAll("/v1/webhooks");
    renderWebhooks();
    renderEndpointSelects();
  }
  async function loadRules() {
    state.rules = await listAll("/v1/alert-rules");
    renderRules();
    renderRuleSelect();
  }
  const webhookName = (id) => { const w = state.webhooks.find((x) => x.id === id); return w ? w.name : id; };
  const ruleName = (id) => {
    if (id === "test") return "test delivery";
    const r = state.rules.find((x) => x.id === id); return r ? r.name : id;
  };

  // --- endpoints ---------------------------------------------------------

  // listPage shows page (from 0) of items in a table of pageSize rows
  // with its Previous/Next pager (ids prefix-prev, prefix-next,
  // prefix-page); it returns the page shown (the last one when the list
  // shrank).
  function listPage(prefix, items, page) {
    const size = state.pageSize;
    const pages = Math.max(1, Math.ceil(items.length / size));
    page = Math.min(Math.max(0, page), pages - 1);
    $(prefix + "-pager").hidden = pages <= 1;
    $(prefix + "-prev").disabled = page === 0;
    $(prefix + "-next").disabled = page >= pages - 1;
    $(prefix + "-page").textContent = "Page " + (page + 1) + " of " + pages + " · " + (page * size + 1) + "–" +
      Math.min(items.length, (page + 1) * size) + " of " + items.length;
    return page;
  }

  function renderWebhooks() {
    state.webhooksPage = listPage("webhooks", state.webhooks, state.webhooksPage);
    const size = state.pageSize;
    const rows = state.webhooks.slice(state.webhooksPage * size, (state.webhooksPage + 1) * size).map((w) => {
      const headers = Object.keys(w.headers || {});
      return h("tr", { dataset: { id: w.id } },
        td(h("span", { class: "name" }, w.name), idCode(w.id, "endpoint id")),
        td(w.kind),
        td(h("span", { class: "target" }, w.target_url),
          headers.length ? h("div", { class: "muted" }, "headers: " + headers.join(", ")) : null,
          w.rate_limit_per_second ? h("div", { class: "muted rate" }, "at most " + w.rate_limit_per_second + "/s") : null),
        td(badge(w.is_active ? "yes" : "no", w.is_active ? "yes" : "no"),
          w.disabled_reason ? h("div", { class: "disabled-reason muted" }, w.disabled_reason) : null),
        td(h("code", { class: "secret-hint" }, w.secret_hint || "—")),
        actionsCell(
          writeButton("Edit", "edit", () => editWebhook(w.id)),
          writeButton(w.is_active ? "Deactivate" : "Activate", "toggle", () => toggleActive(w, "/v1/webhooks/", "webhook", "Endpoint", loadWebhooks)),
          writeButton(w.kind === "pagerduty" ? "New routing key" : "Rotate secret", "rotate", () => rotatePanel(w)),
          writeButton("Send test", "test", () => sendTest(w)),
          plainButton("History", "history", () => openHistory("webhook", w.id, w.name)),
          writeButton("Delete", "delete", () => deleteWebhookPanel(w))));
    });
    $("webhooks").replaceChildren(...(rows.length ? rows : [emptyRow(6, "No endpoints yet.",
      "Add one below: a name and the URL that should receive your alerts (a webhook, a Slack incoming webhook or PagerDuty). Then add a rule that sends to it.")]));
  }

  function renderEndpointSelects() {
    const sel = $("rf-endpoint");
    const keep = sel.value;
    sel.replaceChildren(...state.webhooks.map((w) => h("option", { value: w.id }, w.name + (w.is_active ? "" : " (inactive)") + " — " + w.id)));
    if (keep && state.webhooks.some((w) => w.id === keep)) sel.value = keep;
    const rp = $("rp-endpoint");
    const keepRp = rp.value;
    rp.replaceChildren(h("option", { value: "" }, "any endpoint"), ...state.webhooks.map((w) => h("option", { value: w.id }, w.name)));
    rp.value = keepRp;
    const ds = $("ds-endpoint");
    const keepDs = ds.value;
    ds.replaceChildren(h("option", { value: "" }, "any endpoint"), ...state.webhooks.map((w) => h("option", { value: w.id }, w.name)));
    ds.value = keepDs;
  }

  function kindChanged() {
    const kind = $("wf-kind").value;
    const editing = $("webhook-form").dataset.mode === "edit";
    const pd = kind === "pagerduty";
    $("wf-kind-hint").textContent = {
      webhook: "Deliveries are signed (Standard Webhooks) with the endpoint's secret.",
      slack: "target_url is the Slack incoming-webhook URL; alerts arrive as Slack messages.",
      pagerduty: "target_url is the Events API v2 URL, e.g. https://events.pagerduty.com/v2/enqueue.",
    }[kind] || "";
    $("wf-secret-label").textContent = pd ? "Routing key" : "Signing secret";
    $("wf-secret-hint").textContent = pd ? "Required: the integration's routing key (32 letters and digits)."
      : "Optional: whsec_<base64>. Left empty, one is generated and shown once.";
    $("wf-secret-row").hidden = editing;
    $("wf-secret-label").hidden = editing;
    $("wf-headers-hint").textContent = editing
      ? "Set or replace headers, one Name: value per line; “Name:” with nothing after it removes that header. Leave empty to keep them."
      : "Optional, one Name: value per line; values are stored encrypted.";
  }

  // parseHeaders reads "Name: value" lines; in a patch an empty value is null (remove).
  function parseHeaders(text, forPatch) {
    const out = {};
    let n = 0;
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      if (!line) continue;
      const i = line.indexOf(":");
      const name = (i < 0 ? line : line.slice(0, i)).trim();
      const value = i < 0 ? "" : line.slice(i + 1).trim();
      out[name] = value === "" && forPatch ? null : value;
      n++;
    }
    return n ? out : null;
  }

  function resetWebhookForm() {
    const f = $("webhook-form");
    f.reset();
    delete f.dataset.mode; delete f.dataset.id; delete f.dataset.etag;
    f.elements.kind.disabled = false;
    $("webhook-form-title").textContent = "Add an endpoint";
    $("webhook-submit").textContent = "Add endpoint";
    $("webhook-cancel").hidden = true;
    state.webhookLoaded = null;
    clearProblem($("webhook-problem"), f);
    kindChanged();
  }

  async function editWebhook(id) {
    const f = $("webhook-form");
    clearProblem($("webhook-problem"), f);
    try {
      const { data, etag } = await api("GET", "/v1/webhooks/" + encodeURIComponent(id));
      f.reset();
      f.dataset.mode = "edit"; f.dataset.id = id; f.dataset.etag = etag;
      state.webhookLoaded = data;
      f.elements.name.value = data.name;
      f.elements.kind.value = data.kind;
      f.elements.kind.disabled = true;
      f.elements.target_url.value = data.target_url;
      f.elements.rate_limit_per_second.value = data.rate_limit_per_second == null ? "" : String(data.rate_limit_per_second);
      $("webhook-form-title").textContent = "Edit endpoint “" + data.name + "” (version " + data.version + ")";
      $("webhook-submit").textContent = "Save changes";
      $("webhook-cancel").hidden = false;
      kindChanged();
      f.elements.name.focus();
    } catch (e) {
      showProblem($("webhook-problem"), e, f);
    }
  }

  async function submitWebhook(ev) {
    ev.preventDefault();
    const f = ev.target;
    const box = $("webhook-problem");
    clearProblem(box, f);
    const name = f.elements.name.value.trim();
    const target = f.elements.target_url.value.trim();
    const headersText = f.elements.headers.value;
    const rateText = f.elements.rate_limit_per_second.value.trim();
    const rate = rateText === "" ? null : Number(rateText);
    try {
      if (f.dataset.mode === "edit") {
        const was = state.webhookLoaded || {};
        const patch = {};
        if (name !== was.name) patch.name = name;
        if (target !== was.target_url) patch.target_url = target;
        if (rate !== (was.rate_limit_per_second ?? null)) patch.rate_limit_per_second = rate;
        const headers = parseHeaders(headersText, true);
        if (headers) patch.headers = headers;
        if (!Object.keys(patch).length) { note($("webhook-note"), "Nothing changed."); return; }
        const { data } = await api("PATCH", "/v1/webhooks/" + encodeURIComponent(f.dataset.id),
          { body: patch, etag: f.dataset.etag, contentType: "application/merge-patch+json" });
        resetWebhookForm();
        note($("webhook-note"), "Saved endpoint “" + data.name + "” (version " + data.version + ").");
      } else {
        const body = { name, kind: f.elements.kind.value, target_url: target };
        const headers = parseHeaders(headersText, false);
        if (headers) body.headers = headers;
        if (rate !== null) body.rate_limit_per_second = rate;
        const secret = f.elements.secret.value.trim();
        if (secret) body.secret = secret;
        const { data } = await api("POST", "/v1/webhooks", { body });
        resetWebhookForm();
        note($("webhook-note"), "Created endpoint “" + data.name + "” (" + data.id + ").");
        showSecret(data, data.kind === "pagerduty" ? "Routing key" : "Signing secret", "");
      }
      await loadWebhooks();
      loadAudit(false);
    } catch (e) {
      const reload = () => editWebhook(f.dataset.id);
      showProblem(box, e, f, f.dataset.mode === "edit" ? reload : null);
    }
  }

  function showSecret(w, label, grace) {
    if (!w.secret) return;
    $("secret-label").textContent = label;
    $("secret-endpoint").textContent = w.name;
    $("secret-value").textContent = w.secret;
    $("secret-grace").textContent = grace;
    $("copy-status").textContent = "";
    $("secret-once").hidden = false;
  }
  async function copySecret() {
    const text = $("secret-value").textContent;
    try {
      await navigator.clipboard.writeText(text);
      $("copy-status").textContent = "copied";
    } catch (e) {
      const r = document.createRange();
      r.selectNodeContents($("secret-value"));
      const sel = window.getSelection();
      sel.removeAllRanges(); sel.addRange(r);
      $("copy-status").textContent = "selected: press Ctrl+C (the browser refused clipboard access)";
    }
  }
  function dismissSecret() {
    $("secret-value").textContent = "";
    $("secret-once").hidden = true;
  }

  // toggleActive switches an endpoint or a rule (x, at path + its id)
  // on or off, then reloads its list: kind is "webhook" or "rule" (the ids
  // of its note and problem list), noun what the note calls it.
  async function toggleActive(x, path, kind, noun, reload) {
    const box = $(kind + "-problem-list");
    clearProblem(box);
    try {
      const { data } = await api("PATCH", path + encodeURIComponent(x.id),
        { body: { is_active: !x.is_active }, etag: '"' + x.version + '"', contentType: "application/merge-patch+json" });
      note($(kind + "-note"), noun + " “" + data.name + "” is now " + (data.is_active ? "active" : "inactive") + ".");
      await reload();
      loadAudit(false);
    } catch (e) {
      showProblem(box, e, null, () => { clearProblem(box); reload(); });
    }
  }

  function rotatePanel(w) {
    const panel = $("webhook-panel");
    const pd = w.kind === "pagerduty";
    const form = h("form", { class: "inline", id: "rotate-form", novalidate: true },
      h("strong", null, (pd ? "New routing key for “" : "Rotate the secret of “") + w.name + "”"),
      pd ? null : h("label", { for: "rotate-grace" }, "grace period"),
      pd ? null : h("input", { id: "rotate-grace", name: "grace_period", size: 8, value: "24h" }),
      h("label", { for: "rotate-secret" }, pd ? "routing key" : "new secret (optional)"),
      h("input", { id: "rotate-secret", name: "secret", size: 40, autocomplete: "off", placeholder: pd ? "required" : "generated when empty" }),
      h("button", { type: "submit", class: "write", id: "rotate-submit", disabled: state.readOnly }, pd ? "Set routing key" : "Rotate"),
      h("button", { type: "button", onclick: () => panel.replaceChildren() }, "Cancel"));
    const problem = h("div", { class: "problem", role: "alert", id: "rotate-problem" });
    const hint = h("div", { class: "muted" }, pd ? "The new routing key replaces the old one at once."
      : "During the grace period deliveries are signed with both the new and the previous secret, so the receiver can switch without losing one (0s to 168h).");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearProblem(problem, form);
      const body = {};
      const grace = form.elements.grace_period ? form.elements.grace_period.value.trim() : "";
      const secret = form.elements.secret.value.trim();
      if (grace) body.grace_period = grace;
      if (secret) body.secret = secret;
      try {
        const { data } = await api("POST", "/v1/webhooks/" + encodeURIComponent(w.id) + "/rotate-secret", { body });
        panel.replaceChildren();
        showSecret(data, pd ? "New routing key" : "New signing secret",
          pd ? "" : "The previous secret keeps signing for " + (grace || "24h") + " next to this one.");
        note($("webhook-note"), (pd ? "Routing key of “" : "Secret of “") + data.name + "” rotated.");
        await loadWebhooks();
        loadAudit(false);
      } catch (e) {
        showProblem(problem, e, form);
      }
    });
    panel.replaceChildren(form, hint, problem);
    form.elements.secret.focus();
  }

  async function sendTest(w) {
    const panel = $("webhook-panel");
    if (state.testPoll) { clearTimeout(state.testPoll); state.testPoll = null; }
    const status = h("span", { id: "test-status" }, "sending…");
    const attempts = h("ul", { class: "attempts", id: "test-attempts" });
    const problem = h("div", { class: "problem", role: "alert", id: "test-problem" });
    const alertEl = h("code", { id: "test-alert-id" });
    const alertCopy = h("span");
    panel.replaceChildren(h("div", null, h("strong", null, "Test delivery to “" + w.name + "”: "), "alert ", alertEl, alertCopy, " — status: ", status,
      " ", h("button", { type: "button", onclick: () => { if (state.testPoll) clearTimeout(state.testPoll); panel.replaceChildren(); } }, "Close")),
    attempts, problem);
    let id;
    try {
      ({ data: { alert_id: id } } = await api("POST", "/v1/webhooks/" + encodeURIComponent(w.id) + "/test"));
    } catch (e) {
      status.textContent = "not sent";
      showProblem(problem, e);
      return;
    }
    alertEl.textContent = id;
    alertCopy.replaceChildren(" ", copyButton(id, "alert id", alertEl));
    status.textContent = "queued";
    loadAudit(false);
    let polls = 0;
    const poll = async () => {
      state.testPoll = null;
      polls++;
      try {
        const { data } = await api("GET", "/v1/deliveries/" + encodeURIComponent(id));
        status.replaceChildren(badge(data.status));
        if (data.dead_lettered) status.append(" ", badge("dead letter", "dead"));
        attempts.replaceChildren(...(data.attempts || []).map(attemptItem));
        if (TERMINAL.has(data.status)) return;
      } catch (e) {
        if (e.status !== 404) { showProblem(problem, e); return; }
        status.textContent = "queued (not recorded yet)";
      }
      if (polls < 120) state.testPoll = setTimeout(poll, 1000);
      else status.append(" — still not final; see the endpoint's history");
    };
    state.testPoll = setTimeout(poll, 300);
  }

  function deleteWebhookPanel(w) {
    const panel = $("webhook-panel");
    const affected = state.rules.filter((r) => ruleEndpoint(r) === w.id && r.is_active);
    const problem = h("div", { class: "problem", role: "alert" });
    panel.replaceChildren(
      h("div", null, h("strong", null, "Delete endpoint “" + w.name + "”?"), " It stops receiving at once; its history and audit trail stay."),
      affected.length ? h("div", { class: "warn" }, "These active rules send to it and will be deactivated: " + affected.map((r) => r.name).join(", ") + ".") : null,
      h("div", null,
        h("button", { type: "button", class: "write confirm-delete", disabled: state.readOnly, onclick: async () => {
          clearProblem(problem);
          try {
            const { data } = await api("DELETE", "/v1/webhooks/" + encodeURIComponent(w.id), { etag: '"' + w.version + '"' });
            panel.replaceChildren();
            const deactivated = (data.deactivated_rules || []).map((id) => ruleName(id));
            note($("webhook-note"), "Deleted endpoint “" + w.name + "”. " + (deactivated.length
              ? "Deactivated rules: " + deactivated.join(", ") + "." : "No rules were deactivated."));
            await Promise.all([loadWebhooks(), loadRules()]);
            loadAudit(false);
          } catch (e) {
            showProblem(problem, e, null, () => { panel.replaceChildren(); loadAll(); });
          }
        } }, "Delete"),
        h("button", { type: "button", onclick: () => panel.replaceChildren() }, "Cancel")),
      problem);
  }

  // --- rules -------------------------------------------------------------

  function renderRules() {
    state.rulesPage = listPage("rules", state.rules, state.rulesPage);
    const size = state.pageSize;
    const rows = state.rules.slice(state.rulesPage * size, (state.rulesPage + 1) * size).map((r) => h("tr", { dataset: { id: r.id } },
      td(h("span", { class: "name" }, r.name), r.description ? h("div", { class: "muted" }, r.description) : null, idCode(r.id, "rule id")),
      td(r.event_type, r.duration_threshold ? h("div", { class: "muted" }, "after " + r.duration_threshold) : null,
        r.kind && r.kind !== "per_event" ? h("div", { class: "kind-summary muted" }, kindSummary(r)) : null),
      td(r.condition ? h("code", { class: "condition" }, r.condition) : h("span", { class: "muted" }, "every event")),
      td(webhookName(ruleEndpoint(r))),
      td(r.severity, h("div", { class: "muted" }, [
        r.rate_limit_per_minute ? r.rate_limit_per_minute + "/min" : "",
        r.cooldown ? "cooldown " + r.cooldown : "",
        r.max_attempts + " attempts",
      ].filter(Boolean).join(" · "))),
      td(badge(r.is_active ? "yes" : "no", r.is_active ? "yes" : "no"),
        r.disabled_reason ? h("div", { class: "disabled-reason muted" }, r.disabled_reason) : null),
      actionsCell(
        writeButton("Edit", "edit", () => editRule(r.id)),
        writeButton(r.is_active ? "Deactivate" : "Activate", "toggle", () => toggleActive(r, "/v1/alert-rules/", "rule", "Rule", loadRules)),
        plainButton("History", "history", () => openHistory("rule", r.id, r.name)),
        r.kind && r.kind !== "per_event" ? plainButton("Groups", "groups", () => openGroups(r)) : null,
        writeButton("Delete", "delete", () => deleteRulePanel(r)))));
    $("rules").replaceChildren(...(rows.length ? rows : [emptyRow(7, "No rules yet.", state.webhooks.length
      ? "Add one below: the event to watch (e.g. workflow.run.failed), an optional condition, and the endpoint to alert."
      : "Add an endpoint first (above), then a rule below that sends to it.")]));
  }

  function renderRuleSelect() {
    const rp = $("rp-rule");
    const keep = rp.value;
    rp.replaceChildren(h("option", { value: "" }, "any rule"), ...state.rules.map((r) => h("option", { value: r.id }, r.name)));
    rp.value = keep;
    const ds = $("ds-rule");
    const keepDs = ds.value;
    ds.replaceChildren(h("option", { value: "" }, "any rule"), h("option", { value: "test" }, "test deliveries"),
      h("option", { value: "notice" }, "health notices"), ...state.rules.map((r) => h("option", { value: r.id }, r.name)));
    ds.value = keepDs;
  }

  function eventTypeChanged() {
    const t = state.eventTypes.find((x) => x.type === $("rf-event").value);
    const help = $("condition-help");
    if (!t) { help.replaceChildren(); return; }
    $("rf-event-hint").textContent = t.description || "";
    $("rf-threshold-row").hidden = !t.needs_duration_threshold;
    $("rf-threshold-label").hidden = !t.needs_duration_threshold;
    if (!t.needs_duration_threshold) $("rf-threshold").value = "";
    const fields = t.fields || [];
    help.replaceChildren(
      h("div", null, "Optional expression over the event (expr-lang); the rule fires only when it is true.",
        t.example_condition ? [" Example: ", h("code", null, t.example_condition)] : null),
      h("details", null,
        h("summary", null, "Fields of " + t.type + " (" + fields.length + ")"),
        h("ul", { class: "field-list" }, fields.map((fl) => h("li", null,
          h("code", null, fl.path), " ", h("span", { class: "muted" }, "(" + fl.type + ")"), " — ", fl.description,
          fl.example ? [" e.g. ", h("button", { type: "button", title: "use this example", onclick: () => { $("rf-condition").value = fl.example; $("rf-condition").focus(); } }, fl.example)] : null)))));
  }

  function resetRuleForm() {
    const f = $("rule-form");
    f.reset();
    delete f.dataset.mode; delete f.dataset.id; delete f.dataset.etag;
    state.ruleLoaded = null;
    $("rule-form-title").textContent = "Add a rule";
    $("rule-submit").textContent = "Add rule";
    $("rule-cancel").hidden = true;
    clearProblem($("rule-problem"), f);
    f.elements.kind.value = "per_event";
    ruleKindChanged();
    if (state.eventTypes.length) f.elements.event_type.value = state.eventTypes[0].type;
    eventTypeChanged();
  }

  // ruleDoc reads the form as a rule document: optional fields left empty are null.
  function ruleDoc(f) {
    const num = (v) => (v.trim() === "" ? null : Number(v));
    const str = (v) => (v.trim() === "" ? null : v.trim());
    const kind = f.elements.kind.value;
    // A member the kind does not take is null (a patch to another kind
    // removes it).
    const shown = (name) => { const el = f.elements[name]; const row = el && el.closest("[data-kinds]"); return !row || !row.hidden; };
    const agg = (name, v) => (shown(name) ? v : null);
    const groupBy = f.elements.group_by.value.split(",").map((x) => x.trim()).filter(Boolean);
    return {
      kind: kind,
      window: agg("window", str(f.elements.window.value)),
      threshold: agg("threshold", num(f.elements.threshold.value)),
      success_ratio_below: agg("success_ratio_below", num(f.elements.success_ratio_below.value)),
      min_runs: agg("min_runs", num(f.elements.min_runs.value)),
      group_by: agg("group_by", groupBy.length ? groupBy : null),
      max_groups: agg("max_groups", num(f.elements.max_groups.value)),
      hold: agg("hold", str(f.elements.hold.value)),
      repeat_interval: agg("repeat_interval", str(f.elements.repeat_interval.value)),
      name: f.elements.name.value.trim(),
      description: str(f.elements.description.value),
      event_type: f.elements.event_type.value,
      condition: str(f.elements.condition.value),
      duration_threshold: $("rf-threshold-row").hidden ? null : str(f.elements.duration_threshold.value),
      endpoint_id: f.elements.endpoint_id.value,
      severity: f.elements.severity.value,
      rate_limit_per_minute: agg("rate_limit_per_minute", num(f.elements.rate_limit_per_minute.value)),
      cooldown: agg("cooldown", str(f.elements.cooldown.value)),
      max_attempts: num(f.elements.max_attempts.value),
      include_error_message: shown("include_error_message") && f.elements.include_error_message.checked,
    };
  }
  // loadedDoc is the same document for a rule as read from the API.
  function loadedDoc(r) {
    return {
      name: r.name, description: r.description || null, event_type: r.event_type, condition: r.condition || null,
      duration_threshold: r.duration_threshold || null, endpoint_id: ruleEndpoint(r), severity: r.severity,
      rate_limit_per_minute: r.rate_limit_per_minute || null, cooldown: r.cooldown || null, max_attempts: r.max_attempts,
      include_error_message: !!r.include_error_message,
      kind: r.kind || "per_event", window: r.window || null, threshold: r.threshold || null,
      success_ratio_below: r.success_ratio_below || null, min_runs: r.min_runs || null,
      group_by: r.group_by && r.group_by.length ? r.group_by : null, max_groups: r.max_groups || null,
      hold: r.hold || null, repeat_interval: r.repeat_interval || null,
    };
  }

  async function editRule(id) {
    const f = $("rule-form");
    clearProblem($("rule-problem"), f);
    try {
      const { data, etag } = await api("GET", "/v1/alert-rules/" + encodeURIComponent(id));
      f.reset();
      f.dataset.mode = "edit"; f.dataset.id = id; f.dataset.etag = etag;
      state.ruleLoaded = data;
      const d = loadedDoc(data);
      f.elements.kind.value = d.kind;
      ruleKindChanged();
      f.elements.event_type.value = d.event_type;
      eventTypeChanged();
      for (const name of ["window", "threshold", "success_ratio_below", "min_runs", "max_groups", "hold", "repeat_interval"]) {
        f.elements[name].value = d[name] === null ? "" : d[name];
      }
      f.elements.group_by.value = (d.group_by || []).join(", ");
      f.elements.name.value = d.name;
      f.elements.description.value = d.description || "";
      f.elements.condition.value = d.condition || "";
      f.elements.duration_threshold.value = d.duration_threshold || "";
      f.elements.endpoint_id.value = ruleEndpoint(d);
      f.elements.severity.value = d.severity;
      f.elements.rate_limit_per_minute.value = d.rate_limit_per_minute || "";
      f.elements.cooldown.value = d.cooldown || "";
      f.elements.max_attempts.value = d.max_attempts || "";
      f.elements.include_error_message.checked = d.include_error_message;
      $("rule-form-title").textContent = "Edit rule “" + data.name + "” (version " + data.version + ")";
      $("rule-submit").textContent = "Save changes";
      $("rule-cancel").hidden = false;
      f.elements.name.focus();
    } catch (e) {
      showProblem($("rule-problem"), e, f);
    }
  }

  async function submitRule(ev) {
    ev.preventDefault();
    const f = ev.target;
    const box = $("rule-problem");
    clearProblem(box, f);
    const doc = ruleDoc(f);
    try {
      if (f.dataset.mode === "edit") {
        const was = loadedDoc(state.ruleLoaded || {});
        const patch = {};
        for (const [k, v] of Object.entries(doc)) if (JSON.stringify(v) !== JSON.stringify(was[k])) patch[k] = v;
        if (!Object.keys(patch).length) { note($("rule-note"), "Nothing changed."); return; }
        const { data } = await api("PATCH", "/v1/alert-rules/" + encodeURIComponent(f.dataset.id),
          { body: patch, etag: f.dataset.etag, contentType: "application/merge-patch+json" });
        resetRuleForm();
        note($("rule-note"), "Saved rule “" + data.name + "” (version " + data.version + ").");
      } else {
        const body = {};
        for (const [k, v] of Object.entries(doc)) if (v !== null && v !== "") body[k] = v;
        if (!body.include_error_message) delete body.include_error_message;
        const { data } = await api("POST", "/v1/alert-rules", { body });
        resetRuleForm();
        note($("rule-note"), "Created rule “" + data.name + "” (" + data.id + ").");
      }
      await loadRules();
      loadAudit(false);
    } catch (e) {
      showProblem(box, e, f, f.dataset.mode === "edit" ? () => editRule(f.dataset.id) : null);
    }
  }

  function deleteRulePanel(r) {
    const panel = $("rule-panel");
    const problem = h("div", { class: "problem", role: "alert" });
    panel.replaceChildren(
      h("div", null, h("strong", null, "Delete rule “" + r.name + "”?"), " It stops matching within a second; its history and audit trail stay."),
      h("div", null,
        h("button", { type: "button", class: "write confirm-delete", disabled: state.readOnly, onclick: async () => {
          clearProblem(problem);
          try {
            await api("DELETE", "/v1/alert-rules/" + encodeURIComponent(r.id), { etag: '"' + r.version + '"' });
            panel.replaceChildren();
            note($("rule-note"), "Deleted rule “" + r.name + "”.");
            await loadRules();
            loadAudit(false);
          } catch (e) {
            showProblem(problem, e, null, () => { panel.replaceChildren(); loadRules(); });
          }
        } }, "Delete"),
        h("button", { type: "button", onclick: () => panel.replaceChildren() }, "Cancel")),
      problem);
  }

  // --- groups of count and rate rules -------------------------------------

  const shortDur = (d) => (d || "").replace(/(\d)m0s$/, "$1m").replace(/(\d)h0m$/, "$1h");
  function kindSummary(r) {
    const by = r.group_by && r.group_by.length ? " by " + r.group_by.join(", ") : "";
    if (r.kind === "count") return "count: ≥ " + r.threshold + " in " + shortDur(r.window) + by;
    return "rate: success < " + (r.success_ratio_below * 100).toFixed(2).replace(/\.?0+$/, "") + "% in " + shortDur(r.window) +
      " (min " + r.min_runs + " runs)" + by;
  }
  function groupText(g) {
    const parts = Object.entries(g.group || {}).map(([k, v]) => k + "=" + (v === "" ? "(none)" : v));
    return parts.length ? parts.join(", ") : "(the whole rule)";
  }
  function valueText(g) {
    const v = g.value || {};
    const r = state.rules.find((x) => x.id === g.rule_id);
    if (v.matched !== undefined) {
      const noun = { "workflow.run.failed": "failures", "workflow.run.succeeded": "successes", "workflow.run.started": "starts",
        "workflow.run.duration_exceeded": "slow runs", "workflow.run.finished": "finished runs" }[r && r.event_type] || "matching events";
      return v.matched + " " + noun + " in " + (r ? shortDur(r.window) : "the window") + (r && r.threshold ? " (threshold " + r.threshold + ")" : "");
    }
    const ok = v.succeeded || 0, failed = v.failed || 0;
    const ratio = v.ratio !== undefined ? (v.ratio * 100).toFixed(1) + "% succeeded" : "no runs";
    return ratio + " (" + ok + " succeeded, " + failed + " failed)";
  }
  function stateCell(g) {
    if (g.state === "firing") return [badge("firing", "dead"), " ", h("span", { class: "since" }, "firing since ", timeEl(g.firing_since))];
    if (g.state === "resolving") return [badge("resolving", "retry"), " ", h("span", { class: "since" }, "firing since ", timeEl(g.firing_since), ", recovering since ", timeEl(g.resolving_since))];
    return [badge("inactive", "yes"), g.last_resolved_at ? h("span", { class: "muted" }, " last resolved ", timeEl(g.last_resolved_at)) : null];
  }

  function openGroups(r) {
    state.groups = { rule: r, cursor: "" };
    $("groups-panel").hidden = false;
    $("groups-title").textContent = "Groups of “" + r.name + "” (" + kindSummary(r) + ")";
    loadGroups(false);
  }
  function closeGroups() {
    state.groups = null;
    $("groups-panel").hidden = true;
    $("groups").replaceChildren();
  }
  async function loadGroups(more) {
    const g = state.groups;
    if (!g) return;
    const box = $("groups-problem");
    clearProblem(box);
    try {
      const { data } = await api("GET", "/v1/alert-rules/" + encodeURIComponent(g.rule.id) + "/groups" +
        qs({ state: $("groups-state").value, limit: 50, cursor: more ? g.cursor : "" }));
      g.cursor = data.next_cursor || "";
      const s = data.summary || {};
      $("groups-summary").textContent = s.groups + " groups of at most " + s.max_groups + "; " + s.dropped + " events dropped (over max_groups), " +
        s.late + " too late for the window.";
      const rows = (data.items || []).map((x) => h("tr", { dataset: { groupKey: x.group_key } },
        td(groupText(x)), td(stateCell(x)), td(valueText(x)), td(timeEl(x.last_event_at)), td(x.incident_id ? idCode(x.incident_id, "incident id") : "—")));
      if (more) $("groups").append(...rows);
      else $("groups").replaceChildren(...(rows.length ? rows : [emptyRow(5, "No groups (yet): nothing matched in the window.")]));
      $("groups-more").hidden = !g.cursor;
    } catch (e) {
      showProblem(box, e);
    }
  }

  async function loadFiring() {
    try {
      const { data } = await api("GET", "/v1/alert-groups" + qs({ state: "firing", limit: 200 }));
      const rows = (data.items || []).map((x) => h("tr", { dataset: { ruleId: x.rule_id, groupKey: x.group_key } },
        td(x.rule_name || ruleName(x.rule_id)), td(groupText(x)), td(stateCell(x)), td(valueText(x)), td(x.incident_id ? idCode(x.incident_id, "incident id") : "—")));
      $("firing").replaceChildren(...(rows.length ? rows : [emptyRow(5, "Nothing fires now.", "Count and rate rules appear here while one of their groups fires.")]));
    } catch (e) {
      $("firing").replaceChildren(h("tr", null, h("td", { colspan: 5, class: "problem" }, "Could not load: " + e.message)));
    }
  }

  // --- delivery history --------------------------------------------------

  function attemptItem(a) {
    const parts = ["#" + a.attempt, a.outcome];
    parts.push(a.status_code === null || a.status_code === undefined ? "no answer" : "HTTP " + a.status_code);
    parts.push(a.latency_ms + " ms");
    if (a.error_class) parts.push(a.error_class);
    return h("li", { class: "attempt" }, parts.join(" · "), " · ", timeEl(a.attempted_at),
      a.error ? h("div", { class: "muted" }, a.error) : null,
      a.response_excerpt ? h("details", null, h("summary", null, "answer"), h("pre", null, a.response_excerpt)) : null);
  }

  function openHistory(kind, id, name) {
    state.history = { kind, id, name, cursor: "" };
    $("history-title").textContent = "Deliveries of " + (kind === "rule" ? "rule" : "endpoint") + " “" + name + "”";
    $("history-hint").hidden = true;
    $("history-controls").hidden = false;
    $("history-table").hidden = false;
    $("history-outcome").value = "";
    loadHistory(false);
    $("history-section").scrollIntoView();
  }

  async function loadHistory(more) {
    const hs = state.history;
    if (!hs) return;
    const box = $("history-problem");
    clearProblem(box);
    const base = (hs.kind === "rule" ? "/v1/alert-rules/" : "/v1/webhooks/") + encodeURIComponent(hs.id) + "/deliveries";
    try {
      const { data } = await api("GET", base + qs({ outcome: $("history-outcome").value, cursor: more ? hs.cursor : "", limit: 50 }));
      const rows = (data.items || []).map(deliveryRow);
      if (more) $("history").append(...rows);
      else $("history").replaceChildren(...(rows.length ? rows : [emptyRow(7, "No alerts yet.", "Alerts appear here once the rule matches an event; “Send test” on an endpoint makes one at once.")]));
      hs.cursor = data.next_cursor || "";
      $("history-more").hidden = !hs.cursor;
    } catch (e) {
      showProblem(box, e);
    }
  }

  function deliveryRow(d) {
    return h("tr", { dataset: { alertId: d.alert_id } },
      td(idCode(d.alert_id, "alert id"), d.rule_id === "test" ? h("div", { class: "muted" }, "test delivery") : null),
      td(timeEl(d.created_at)),
      td(d.event_type),
      td(d.workflow_name || d.workflow_id, h("div", { class: "muted" }, d.run_id)),
      td(badge(d.status, d.status), d.dead_lettered ? [" ", badge("dead letter", "dead")] : null,
        d.replayed_at ? h("div", { class: "muted" }, "replayed ", timeEl(d.replayed_at)) : null),
      td((d.attempts || []).length ? h("ul", { class: "attempts" }, d.attempts.map(attemptItem)) : h("span", { class: "muted" }, "none yet")),
      actionsCell(writeButton("Redeliver", "redeliver", () => redeliver(d))));
  }

  async function redeliver(d) {
    const box = $("history-problem");
    clearProblem(box);
    try {
      await api("POST", "/v1/deliveries/" + encodeURIComponent(d.alert_id) + "/redeliver");
      note($("history-note"), "Redelivery of ", h("code", null, d.alert_id), " queued (same webhook-id; receivers deduplicate on it).");
      loadAudit(false);
    } catch (e) {
      showProblem(box, e);
    }
  }

  // --- dead letters ------------------------------------------------------

  async function loadDeadLetters(more) {
    const box = $("dl-problem");
    clearProblem(box);
    try {
      const { data } = await api("GET", "/v1/dead-letters" + qs({ replayed: $("dl-replayed").value, cursor: more ? state.dlCursor : "", limit: 50 }));
      const rows = (data.items || []).map((d) => h("tr", { dataset: { alertId: d.alert_id } },
        td(idCode(d.alert_id, "alert id")),
        td(ruleName(d.rule_id)),
        td(webhookName(d.endpoint_id)),
        td(d.event_type, h("div", { class: "muted" }, d.workflow_id + " / " + d.run_id)),
        td(String(d.attempts)),
        td(h("span", { class: "last-error" }, d.last_error)),
        td(timeEl(d.dead_at)),
        td(d.replayed_at ? timeEl(d.replayed_at) : h("span", { class: "muted" }, "no")),
        actionsCell(writeButton("Replay", "replay", () => replayOne(d)))));
      if (more) $("deadletters").append(...rows);
      else $("deadletters").replaceChildren(...(rows.length ? rows : [emptyRow(9, "No dead letters.", "Alerts that ran out of attempts land here; once the endpoint works again, replay them one by one or by time range.")]));
      state.dlCursor = data.next_cursor || "";
      $("dl-more").hidden = !state.dlCursor;
    } catch (e) {
      showProblem(box, e);
    }
  }

  async function replayOne(d) {
    const box = $("dl-problem");
    clearProblem(box);
    try {
      const { data } = await api("POST", "/v1/dead-letters/" + encodeURIComponent(d.alert_id) + "/replay");
      note($("dl-note"), "Replayed ", h("code", null, data.alert_id), " at " + fmtTime(data.replayed_at) + ".");
      await loadDeadLetters(false);
      loadAudit(false);
    } catch (e) {
      showProblem(box, e);
    }
  }

  async function replayRange(ev) {
    ev.preventDefault();
    const f = ev.target;
    const box = $("dl-problem");
    clearProblem(box, f);
    const iso = (v) => { if (!v) return ""; const d = new Date(v); return isNaN(d) ? v : d.toISOString(); };
    const body = { since: iso(f.elements.since.value), until: iso(f.elements.until.value) };
    if (f.elements.endpoint_id.value) body.endpoint_id = f.elements.endpoint_id.value;
    if (f.elements.rule_id.value) body.rule_id = f.elements.rule_id.value;
    if (f.elements.limit.value) body.limit = Number(f.elements.limit.value);
    try {
      const { data } = await api("POST", "/v1/dead-letters/replay", { body });
      note($("dl-note"), "Replayed " + data.replayed + " dead letter" + (data.replayed === 1 ? "" : "s") +
        (data.skipped ? "; skipped " + data.skipped + " whose endpoint is deleted or disabled" : "") +
        (data.more ? "; more remain — replay again for the rest" : "") + ".",
      (data.alert_ids || []).length ? h("div", null, h("code", null, data.alert_ids.join(" "))) : null);
      await loadDeadLetters(false);
      loadAudit(false);
    } catch (e) {
      showProblem(box, e, f);
    }
  }

  // --- audit trail -------------------------------------------------------

  function changeSummary(ev) {
    const b = ev.before, a = ev.after;
    if (b == null && a == null) return "";
    if (b == null) return "created";
    if (a == null) return "deleted";
    if (typeof a !== "object" || typeof b !== "object") return "";
    const keys = new Set([...Object.keys(b), ...Object.keys(a)]);
    const out = [];
    for (const k of keys) {
      if (k === "version" || k === "updated_at") continue;
      const x = JSON.stringify(b[k]), y = JSON.stringify(a[k]);
      if (x !== y) out.push(k + ": " + (x === undefined ? "—" : x) + " → " + (y === undefined ? "—" : y));
    }
    return out.join("\n");
  }

  async function loadAudit(more) {
    const box = $("audit-problem");
    clearProblem(box);
    try {
      const { data } = await api("GET", "/v1/audit-events" + qs({ cursor: more ? state.auditCursor : "", limit: 25 }));
      const rows = (data.items || []).map((ev) => h("tr", { dataset: { id: String(ev.id) } },
        td(timeEl(ev.created_at)),
        td(ev.actor),
        td(h("span", { class: "action" }, ev.action)),
        td(ev.resource_type, " ", h("code", null, ev.resource_id)),
        td(h("code", { class: "muted" }, ev.request_id || "")),
        td(h("pre", null, changeSummary(ev)),
          h("details", null, h("summary", null, "before / after"),
            h("pre", null, "before: " + JSON.stringify(ev.before, null, 1) + "\nafter: " + JSON.stringify(ev.after, null, 1))))));
      if (more) $("audit").append(...rows);
      else $("audit").replaceChildren(...(rows.length ? rows : [emptyRow(6, "No changes yet.", "Every change to endpoints, rules and settings, by whom and from which request, is listed here.")]));
      state.auditCursor = data.next_cursor || "";
      $("audit-more").hidden = !state.auditCursor;
    } catch (e) {
      showProblem(box, e);
    }
  }

  // --- overview: charts and endpoint health (GET /v1/stats/...) -------------

  // The colours of the series; the same in the charts and their totals.
  const SERIES = [
    { key: "delivered", label: "delivered", color: "#2f8a4c" },
    { key: "retrying", label: "retrying", color: "#d08a00" },
    { key: "dead", label: "dead", color: "#c0253f" },
    { key: "gone", label: "endpoint gone", color: "#7a4bb5" },
  ];
  const LATENCY = [
    { key: "p50", label: "p50", color: "#3467c2" },
    { key: "p95", label: "p95", color: "#d08a00" },
    { key: "p99", label: "p99", color: "#c0253f" },
  ];
  // The colours of the rules or endpoints of a split chart ("other" grey).
  const PALETTE = ["#3467c2", "#2f8a4c", "#d08a00", "#c0253f", "#7a4bb5", "#1f9aa8", "#b5651d", "#d0459a", "#5c7a1f", "#4a5366"];
  const charts = {}; // element id → uPlot
  const chartLive = {}; // element id → {shape, from, to, hover, n} of its chart
  const chartSizer = typeof ResizeObserver === "function" ? new ResizeObserver((entries) => {
    for (const e of entries) {
      const c = charts[e.target.id];
      const w = Math.floor(e.contentRect.width);
      if (c && w > 0 && Math.abs(c.width - w) > 1) c.setSize({ width: w, height: chartHeight() });
    }
  }) : null;
  const chartHeight = () => (window.innerWidth < 720 ? 180 : 220);
  const fmtMs = (v) => (v === null || v === undefined ? "—" : v >= 1000 ? (v / 1000).toFixed(v >= 10000 ? 0 : 1) + " s" : v + " ms");
  const fmtCount = (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString());

  // drawChart draws (or redraws) in el a chart of the series over the
  // buckets' middles xs (seconds), from `from` to `to` (seconds): bars
  // (defs[i].bars) or lines with points. Pointing at bucket i writes
  // hover(i) under the chart (el.id + "-hover").
  //
  // A chart with the same series as before (an auto-refresh) keeps its
  // canvas and where the pointer is: only its data, time range and hover
  // text change.
  function drawChart(el, xs, from, to, defs, columns, valueFmt, hover) {
    const said = $(el.id + "-hover");
    const idle = "Point at (or tap) the chart for a bucket's numbers.";
    const say = (u) => { const i = u.cursor.idx; said.textContent = i === null || i === undefined || i >= live.n ? idle : live.hover(i); };
    const shape = JSON.stringify(defs.map((d) => [d.key, d.label, d.color, !!d.bars]));
    let live = chartLive[el.id];
    if (charts[el.id] && live && live.shape === shape) {
      Object.assign(live, { from, to, hover, n: xs.length });
      charts[el.id].setData([xs].concat(columns));
      say(charts[el.id]);
      return;
    }
    live = chartLive[el.id] = { shape, from, to, hover, n: xs.length };
    const width = Math.max(200, Math.floor(el.clientWidth));
    said.textContent = idle;
    const opts = {
      hooks: { setCursor: [say] },
      width, height: chartHeight(),
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: () => [live.from, live.to] }, y: { range: (u, min, max) => [0, Math.max(1, (max || 0) * 1.15)] } },
      axes: [{ stroke: "#4a5366", grid: { stroke: "#eef0f3" } },
        { stroke: "#4a5366", grid: { stroke: "#eef0f3" }, size: 56, values: (u, vals) => vals.map((v) => valueFmt(v)) }],
      series: [{}].concat(defs.map((d) => d.bars
        ? { label: d.label, stroke: d.color, fill: d.color, width: 0, paths: uPlot.paths.bars({ size: [0.85, 24] }), points: { show: false } }
        : { label: d.label, stroke: d.color, width: 2, points: { show: true, size: 5, fill: d.color }, spanGaps: false })),
    };
    if (charts[el.id]) charts[el.id].destroy();
    el.replaceChildren();
    charts[el.id] = new uPlot(opts, [xs].concat(columns), el);
    if (chartSizer) chartSizer.observe(el);
  }

  // totalsList shows each series' total beside its colour: the legend.
  function totalsList(ul, defs, values, fmt) {
    ul.replaceChildren(...defs.map((d) => h("li", { dataset: { series: d.key } },
      h("span", { class: "swatch", style: "background:" + d.color }), h("span", { class: "label" }, d.label),
      h("span", { class: "value" }, fmt(values[d.key])))));
  }

  // The overview's state: the last answer, and which series is shown.
  const overview = { stats: null, shown: "", seq: 0 };

  async function loadOverview() {
    const box = $("overview-problem");
    const mine = ++overview.seq; // an answer to an older choice that arrives late is dropped
    try {
      const { data } = await api("GET", "/v1/stats/deliveries" + qs({ window: $("ov-window").value, group_by: $("ov-group").value }));
      if (mine !== overview.seq) return;
      overview.stats = data;
      clearProblem(box);
      renderOverview();
    } catch (e) {
      showProblem(box, e);
    }
    loadHealth();
  }

  function renderOverview() {
    const data = overview.stats;
    if (!data) return;
    const series = data.series || [];
    const grouped = data.group_by !== "none" && series.length > 0;
    const sel = $("ov-series");
    if (!series.some((x) => x.key === overview.shown)) overview.shown = "";
    const noun = data.group_by === "rule" ? "rule" : "endpoint";
    sel.replaceChildren(h("option", { value: "" }, "each " + noun), ...series.map((x) => h("option", { value: x.key }, x.name || x.key)));
    sel.value = overview.shown;
    sel.hidden = !grouped;
    $("ov-series-label").hidden = !grouped;
    const one = series.find((x) => x.key === overview.shown);
    const src = one || data;
    const buckets = src.buckets || [];
    const half = data.bucket_seconds / 2;
    const xs = buckets.map((b) => Date.parse(b.start) / 1000 + half);
    const from = Date.parse(data.from) / 1000, to = Date.parse(data.to) / 1000;
    $("ov-range").textContent = fmtTime(data.from) + " – " + fmtTime(data.to) + " · " + (data.bucket_seconds % 3600 === 0
      ? data.bucket_seconds / 3600 + "-hour buckets" : data.bucket_seconds / 60 + "-minute buckets");
    const countAxis = (v) => (Number.isInteger(v) ? String(v) : "");
    if (grouped && !one) {
      // Each rule or endpoint in its colour: its attempts (all outcomes)
      // stacked, the first (most attempts) at the bottom, and its p95.
      const defs = series.map((x, i) => ({ key: x.key, label: x.name || x.key, color: x.other ? "#9aa3b5" : PALETTE[i % PALETTE.length] }));
      const vol = (b) => (b.delivered || 0) + (b.retrying || 0) + (b.dead || 0) + (b.gone || 0);
      const per = series.map((x) => (x.buckets || []).map(vol));
      const stackedSeries = per.map((_, i) => xs.map((_, j) => per.slice(0, i + 1).reduce((n, col) => n + (col[j] || 0), 0)));
      $("chart-deliveries-title").textContent = "Delivery attempts per " + noun;
      $("chart-latency-title").textContent = "p95 latency of delivered attempts per " + noun;
      const at = (i) => fmtTime(new Date((xs[i] - half) * 1000).toISOString()) + ": ";
      drawChart($("chart-deliveries"), xs, from, to, defs.map((d) => Object.assign({ bars: true }, d)).reverse(), stackedSeries.reverse(), countAxis,
        (i) => at(i) + defs.map((d, k) => d.label + " " + fmtCount(per[k][i] || 0)).join(" · "));
      totalsList($("totals-deliveries"), defs, Object.fromEntries(series.map((x) => [x.key, vol(x.totals || {})])), fmtCount);
      const p95s = series.map((x) => (x.buckets || []).map((b) => (b.latency_ms ? b.latency_ms.p95 : null)));
      drawChart($("chart-latency"), xs, from, to, defs, p95s, fmtMs, (i) => at(i) + "p95 " + defs.map((d, k) => d.label + " " + fmtMs(p95s[k][i])).join(" · "));
      totalsList($("totals-latency"), defs, Object.fromEntries(series.map((x) => [x.key, x.latency_ms && x.latency_ms.p95])), fmtMs);
    } else {
      const what = one ? " — " + (one.name || one.key) : "";
      $("chart-deliveries-title").textContent = "Delivery attempts" + what;
      $("chart-latency-title").textContent = "Latency of delivered attempts" + what;
      drawOutcomes(xs, from, to, half, buckets, src, countAxis);
    }
    renderBreakdown(data, series, noun);
  }

  // drawOutcomes charts one series' (or all) attempts by outcome and its
  // latency percentiles.
  function drawOutcomes(xs, from, to, half, buckets, src, countAxis) {
    const at = (i) => fmtTime(new Date((xs[i] - half) * 1000).toISOString()) + ": ";
    // Stacked bars, delivered at the bottom: each series is drawn as the
    // sum of itself and those below it, the tallest first.
    const stacked = SERIES.map((d, i) => buckets.map((b) => SERIES.slice(0, i + 1).reduce((n, x) => n + (b[x.key] || 0), 0)));
    drawChart($("chart-deliveries"), xs, from, to, SERIES.map((d) => Object.assign({ bars: true }, d)).reverse(), stacked.reverse(), countAxis,
      (i) => at(i) + SERIES.map((d) => d.label + " " + fmtCount(buckets[i][d.key] || 0)).join(" · "));
    totalsList($("totals-deliveries"), SERIES, src.totals || {}, fmtCount);
    drawChart($("chart-latency"), xs, from, to, LATENCY, LATENCY.map((d) => buckets.map((b) => (b.latency_ms ? b.latency_ms[d.key] : null))), fmtMs,
      (i) => at(i) + LATENCY.map((d) => d.label + " " + fmtMs(buckets[i].latency_ms ? buckets[i].latency_ms[d.key] : null)).join(" · "));
    totalsList($("totals-latency"), LATENCY, src.latency_ms || {}, fmtMs);
  }

  // renderBreakdown lists each rule's or endpoint's totals, with buttons to
  // chart it alone and to search its deliveries.
  function renderBreakdown(data, series, noun) {
    $("ov-breakdown").hidden = data.group_by === "none";
    $("ov-breakdown-title").textContent = "Per " + noun;
    $("ov-breakdown-name").textContent = noun === "rule" ? "Rule" : "Endpoint";
    const rows = series.map((x) => h("tr", { dataset: { series: x.key }, class: x.key === overview.shown ? "chosen" : null },
      td(h("span", { class: "name" }, x.name || x.key), x.other || x.key === "test" || x.key === "notice" ? null : idCode(x.key, noun + " id")),
      td(fmtCount(x.totals.delivered)), td(fmtCount(x.totals.retrying)), td(fmtCount(x.totals.dead)), td(fmtCount(x.totals.gone)),
      td(fmtMs(x.latency_ms && x.latency_ms.p95)),
      actionsCell(plainButton("Chart", "show-series", () => { overview.shown = x.key; renderOverview(); }),
        x.other ? null : plainButton("Deliveries", "search-series", () => searchFor(noun === "rule" ? { rule_id: x.key } : { endpoint_id: x.key })))));
    $("ov-series-table").replaceChildren(...(rows.length ? rows : [emptyRow(7, "No delivery attempts in this window.",
      "Attempts appear here once your rules match events; “Send test” on an endpoint makes one at once.")]));
  }

  // The endpoint health list pages with the server's cursors.
  const healthPager = cursorPager("health", "health", async (cursor) => {
    const { data } = await api("GET", "/v1/stats/endpoints" + qs({ window: $("ov-window").value, cursor, limit: 25 }));
    const rows = (data.items || []).map(healthRow);
    return { next: data.next_cursor || "", count: rows.length, show: () => $("health").replaceChildren(...(rows.length ? rows : [emptyRow(5, "No endpoints yet.",
      "Add an endpoint under Webhook endpoints below; its success rate, last error and circuit breaker show here.")])) };
  }, $("overview-problem"));
  async function loadHealth() { await healthPager.reload(); }

  function healthRow(x) {
    const rate = x.success_rate;
    const t = x.totals || {};
    const e = x.last_error;
    return h("tr", { dataset: { id: x.endpoint_id } },
      td(h("span", { class: "name" }, x.name), " ", h("span", { class: "muted" }, x.kind), idCode(x.endpoint_id, "endpoint id")),
      td(rate === null || rate === undefined ? h("span", { class: "muted success-rate" }, "no attempts") :
        [h("span", { class: "success-rate" }, (rate * 100).toFixed(rate === 1 || rate === 0 ? 0 : 1) + "%"),
          h("span", { class: "rate-bar", title: t.delivered + " of " + x.attempts + " attempts delivered" }, h("span", { style: "width:" + Math.round(rate * 100) + "%" })),
          h("div", { class: "muted" }, fmtCount(t.delivered) + " of " + fmtCount(x.attempts) + " attempts · p95 " + fmtMs(x.latency_ms && x.latency_ms.p95))]),
      td(e ? [h("div", { class: "last-error" }, badge(e.outcome), " ", e.status_code ? "HTTP " + e.status_code : "no answer",
        e.error_class ? " · " + e.error_class : "", " · ", timeEl(e.attempted_at)),
      e.error ? h("div", { class: "muted" }, e.error) : null, idCode(e.alert_id, "alert id")] : h("span", { class: "muted" }, "none"),
      x.last_delivered_at ? h("div", { class: "muted" }, "last delivered ", timeEl(x.last_delivered_at)) : null),
      td(badge(x.breaker.state, x.breaker.state), x.breaker.since ? h("div", { class: "muted" }, (x.breaker.state === "open" ? "open since " : "closed since "),
        timeEl(x.breaker.since)) : null,
      x.breaker.consecutive_failures ? h("div", { class: "muted" }, x.breaker.consecutive_failures + " failures in a row") : null),
      td(badge(x.is_active ? "active" : "disabled", x.is_active ? "yes" : "no"),
        x.disabled_reason ? h("div", { class: "disabled-reason muted" }, x.disabled_reason) : null));
  }

  // cursorPager pages a list with the server's opaque cursors: Next
  // follows next_cursor, Previous goes back to the cursor the page before
  // was fetched with. fetchPage(cursor) fetches a page and returns
  // {next, count, show}; show() puts it on the page. Only the answer to
  // the latest request is shown: an earlier one that arrives late (a
  // search submitted while the cleared list loads) is dropped. The list's
  // table is aria-busy while its latest request is under way.
  function cursorPager(prefix, tbodyId, fetchPage, box) {
    const p = { cursors: [""], page: 0, seq: 0 };
    const table = $(tbodyId).closest("table");
    const show = (next, count) => {
      $(prefix + "-prev").disabled = p.page === 0;
      $(prefix + "-next").disabled = !next;
      const pager = $(prefix + "-pager");
      if (pager) pager.hidden = p.page === 0 && !next;
      $(prefix + "-page").textContent = count ? "Page " + (p.page + 1) : p.page ? "Page " + (p.page + 1) + " (empty)" : "";
    };
    p.go = async (page) => {
      if (page < 0 || page >= p.cursors.length) return;
      const mine = ++p.seq;
      table.setAttribute("aria-busy", "true");
      try {
        const { next, count, show: showRows } = await fetchPage(p.cursors[page]);
        if (mine !== p.seq) return;
        showRows();
        p.page = page;
        p.cursors.length = page + 1;
        if (next) p.cursors.push(next);
        if (box) clearProblem(box);
        show(next, count);
      } catch (e) {
        if (box && mine === p.seq) showProblem(box, e);
      } finally {
        if (mine === p.seq) table.setAttribute("aria-busy", "false");
      }
    };
    p.reload = () => p.go(p.page);
    p.first = () => { p.cursors = [""]; return p.go(0); };
    $(prefix + "-prev").addEventListener("click", () => p.go(p.page - 1));
    $(prefix + "-next").addEventListener("click", () => p.go(p.page + 1));
    return p;
  }

  // --- deliveries: search every alert (GET /v1/deliveries) -----------------

  const DELIVERIES_PAGE = 25;
  const isoOf = (v) => { if (!v) return ""; const d = new Date(v); return isNaN(d) ? v : d.toISOString(); };
  function deliverySearch() {
    const f = $("deliveries-search").elements;
    return { alert_id: f.alert_id.value.trim(), run_id: f.run_id.value.trim(), workflow: f.workflow.value.trim(), status: f.status.value,
      rule_id: f.rule_id.value, endpoint_id: f.endpoint_id.value, since: isoOf(f.since.value), until: isoOf(f.until.value) };
  }
  const deliveriesPager = cursorPager("ds", "deliveries", async (cursor) => {
    const q = Object.assign(deliverySearch(), { cursor, limit: DELIVERIES_PAGE });
    const { data } = await api("GET", "/v1/deliveries" + qs(q));
    const rows = (data.items || []).map(searchRow);
    const filtered = Object.entries(q).some(([k, v]) => v && k !== "limit" && k !== "cursor");
    return { next: data.next_cursor || "", count: rows.length, show: () => $("deliveries").replaceChildren(...(rows.length ? rows : [filtered
      ? emptyRow(7, "No delivery matches this search.", "Widen it: clear a field, or choose a longer time range.")
      : emptyRow(7, "No deliveries yet.", "Alerts appear here once a rule matches an event; “Send test” on an endpoint makes one at once.")])) };
  }, $("deliveries-problem"));

  function searchRow(d) {
    const last = (d.attempts || [])[d.attempts.length - 1];
    const earlier = (d.attempts || []).slice(0, -1);
    return h("tr", { dataset: { alertId: d.alert_id } },
      td(idCode(d.alert_id, "alert id"), h("div", { class: "muted" }, d.event_type)),
      td(timeEl(d.created_at)),
      td(h("div", { class: "rule" }, ruleName(d.rule_id)), h("div", { class: "muted endpoint" }, "→ " + webhookName(d.endpoint_id))),
      td(h("div", { class: "workflow" }, d.workflow_name || d.workflow_id), d.run_id ? idCode(d.run_id, "run id") : null),
      td(badge(d.status, d.status), d.dead_lettered ? [" ", badge("dead letter", "dead")] : null,
        d.replayed_at ? h("div", { class: "muted" }, "replayed ", timeEl(d.replayed_at)) : null),
      td(last ? h("ul", { class: "attempts" }, attemptItem(last)) : h("span", { class: "muted" }, "none yet"),
        earlier.length ? h("details", null, h("summary", null, earlier.length + " earlier"), h("ul", { class: "attempts" }, earlier.map(attemptItem))) : null),
      actionsCell(writeButton("Redeliver", "redeliver", async () => {
        clearProblem($("deliveries-problem"));
        try {
          await api("POST", "/v1/deliveries/" + encodeURIComponent(d.alert_id) + "/redeliver");
          note($("deliveries-note"), "Redelivery of ", h("code", null, d.alert_id), " queued (same webhook-id; receivers deduplicate on it).");
          loadAudit(false);
        } catch (e) {
          showProblem($("deliveries-problem"), e);
        }
      })));
  }

  // searchFor shows the deliveries of a search (e.g. one rule's) from the
  // overview.
  function searchFor(fields) {
    const f = $("deliveries-search");
    f.reset();
    for (const [k, v] of Object.entries(fields)) f.elements[k].value = v;
    deliveriesPager.first();
    $("deliveries-section").scrollIntoView();
  }

  // noKeyYet fills the overview and the deliveries, before a key is
  // pasted or after it is forgotten, with what to do first.
  function noKeyYet() {
    for (const id of Object.keys(charts)) { charts[id].destroy(); delete charts[id]; delete chartLive[id]; }
    for (const id of ["chart-deliveries", "chart-latency"]) {
      $(id).replaceChildren(h("p", { class: "chart-empty muted" }, "Paste an API key above to see how your deliveries are going."));
      $(id + "-hover").textContent = "";
    }
    for (const id of ["totals-deliveries", "totals-latency", "ov-series-table"]) $(id).replaceChildren();
    $("health").replaceChildren(emptyRow(5, "No API key yet.", "Paste one above to see each endpoint's success rate, last error and circuit breaker."));
    $("deliveries").replaceChildren(emptyRow(7, "No API key yet.", "Paste one above to search your deliveries."));
    $("ov-range").textContent = "";
  }

  // --- auto-refresh --------------------------------------------------------

  // Every 15 s (or ?refresh=<seconds>) the overview, what fires now, the
  // quota and the first page of deliveries are loaded again: not while a
  // form has the focus or holds an edit not saved, not in a hidden tab,
  // not without a key, and not when the box is unticked.
  const REFRESH_MS = (() => {
    const n = Number(new URLSearchParams(location.search).get("refresh"));
    return Number.isFinite(n) && n >= 1 && n <= 3600 ? n * 1000 : 15000;
  })();
  const dirtyForms = new Set();
  for (const id of ["webhook-form", "rule-form", "notice-settings-form", "replay-form"]) {
    $(id).addEventListener("input", () => dirtyForms.add(id));
    $(id).addEventListener("change", () => dirtyForms.add(id));
  }
  // formsQuiet says whether no form is being edited now.
  function formsQuiet() {
    const a = document.activeElement;
    if (a && a.closest && a.closest("form") && a.matches("input, select, textarea")) return false;
    for (const id of ["webhook-form", "rule-form"]) if ($(id).dataset.mode === "edit") return false;
    return dirtyForms.size === 0;
  }
  let refreshTimer = null;
  let refreshing = false;
  async function refreshTick() {
    refreshTimer = setTimeout(refreshTick, REFRESH_MS);
    const status = $("refresh-status");
    if (!$("auto-refresh").checked || document.hidden || !state.ready || refreshing) return;
    if (!formsQuiet()) { status.textContent = "(paused while you edit)"; return; }
    refreshing = true;
    try {
      const tasks = [loadOverview(), loadFiring(), loadQuota()];
      // The first page of deliveries, unless the user opened a row's
      // earlier attempts (a reload would fold them).
      if (deliveriesPager.page === 0 && !document.querySelector("#deliveries details[open]")) tasks.push(deliveriesPager.reload());
      await Promise.all(tasks);
      // Unticked while it loaded: say paused, not the time.
      status.textContent = $("auto-refresh").checked ? "· " + new Date().toLocaleTimeString() : "(paused)";
    } finally {
      refreshing = false;
    }
  }
  function startRefresh() { if (!refreshTimer) refreshTimer = setTimeout(refreshTick, REFRESH_MS); }

  // --- wiring ------------------------------------------------------------

  function useKey(ev) {
    if (ev) ev.preventDefault();
    const key = $("key").value.trim();
    if (!key) { $("key-status").textContent = "Paste an API key first (see below how to get one)."; return; }
    sessionStorage.setItem(KEY_STORE, key);
    state.eventTypes = [];
    resetReadOnly();
    loadAll();
  }

  function forgetKey() {
    sessionStorage.removeItem(KEY_STORE);
    $("key").value = "";
    for (const id of ["webhooks", "rules", "history", "deadletters", "audit", "firing"]) $(id).replaceChildren();
    noKeyYet();
    overview.stats = null;
    state.ready = false;
    $("key-howto").hidden = false;
    closeGroups();
    state.webhooks = []; state.rules = []; state.history = null;
    dismissSecret();
    resetReadOnly();
    $("key-status").textContent = "Key forgotten.";
  }

  function fillRangeDefaults() {
    const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
    const now = new Date();
    $("rp-since").value = local(new Date(now.getTime() - 24 * 3600 * 1000));
    $("rp-until").value = local(new Date(now.getTime() + 60 * 1000));
  }

  $("key-form").addEventListener("submit", useKey);
  $("forget-key").addEventListener("click", forgetKey);
  $("webhook-form").addEventListener("submit", submitWebhook);
  $("webhook-cancel").addEventListener("click", resetWebhookForm);
  $("wf-kind").addEventListener("change", kindChanged);
  $("copy-secret").addEventListener("click", copySecret);
  $("dismiss-secret").addEventListener("click", dismissSecret);
  $("rule-form").addEventListener("submit", submitRule);
  $("rule-cancel").addEventListener("click", resetRuleForm);
  $("rf-event").addEventListener("change", eventTypeChanged);
  $("rf-kind").addEventListener("change", ruleKindChanged);
  $("groups-state").addEventListener("change", () => loadGroups(false));
  $("groups-refresh").addEventListener("click", () => loadGroups(false));
  $("groups-more").addEventListener("click", () => loadGroups(true));
  $("groups-close").addEventListener("click", closeGroups);
  $("firing-refresh").addEventListener("click", loadFiring);
  $("history-outcome").addEventListener("change", () => loadHistory(false));
  $("history-refresh").addEventListener("click", () => loadHistory(false));
  $("history-more").addEventListener("click", () => loadHistory(true));
  $("dl-replayed").addEventListener("change", () => loadDeadLetters(false));
  $("dl-refresh").addEventListener("click", () => loadDeadLetters(false));
  $("dl-more").addEventListener("click", () => loadDeadLetters(true));
  $("replay-form").addEventListener("submit", replayRange);
  $("audit-refresh").addEventListener("click", () => loadAudit(false));
  $("audit-more").addEventListener("click", () => loadAudit(true));

  $("webhooks-prev").addEventListener("click", () => { state.webhooksPage--; renderWebhooks(); });
  $("webhooks-next").addEventListener("click", () => { state.webhooksPage++; renderWebhooks(); });
  $("rules-prev").addEventListener("click", () => { state.rulesPage--; renderRules(); });
  $("rules-next").addEventListener("click", () => { state.rulesPage++; renderRules(); });
  $("ov-window").addEventListener("change", () => { healthPager.cursors = [""]; healthPager.page = 0; loadOverview(); });
  $("ov-group").addEventListener("change", () => { overview.shown = ""; loadOverview(); });
  $("ov-series").addEventListener("change", () => { overview.shown = $("ov-series").value; renderOverview(); });
  $("deliveries-search").addEventListener("submit", (ev) => { ev.preventDefault(); deliveriesPager.first(); });
  // A range picked from the list fills the two times (until: empty, now)
  // and searches; typing a time makes it a custom range.
  $("ds-range").addEventListener("change", () => {
    const v = $("ds-range").value;
    if (v === "custom") return;
    const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
    $("ds-since").value = v ? local(new Date(Date.now() - Number(v) * 1000)) : "";
    $("ds-until").value = "";
    deliveriesPager.first();
  });
  for (const id of ["ds-since", "ds-until"]) $(id).addEventListener("input", () => { $("ds-range").value = "custom"; });
  $("ds-clear").addEventListener("click", () => { $("deliveries-search").reset(); deliveriesPager.first(); });
  $("copy-howto").addEventListener("click", async (ev) => {
    ev.target.textContent = (await copyText($("howto-command").textContent, $("howto-command"))) === "copied" ? "Copied" : "Select";
  });
  $("auto-refresh").addEventListener("change", () => { $("refresh-status").textContent = $("auto-refresh").checked ? "" : "(paused)"; });
  // An edit ends when its form is reset (after a save, or cancelled) or,
  // for the forms that stay filled, submitted.
  for (const id of ["webhook-form", "rule-form"]) $(id).addEventListener("reset", () => dirtyForms.delete(id));
  for (const id of ["notice-settings-form", "replay-form"]) $(id).addEventListener("submit", () => dirtyForms.delete(id));
  $("webhook-cancel").addEventListener("click", () => dirtyForms.delete("webhook-form"));
  $("rule-cancel").addEventListener("click", () => dirtyForms.delete("rule-form"));

  // The menu: on a phone the navigation folds behind a button.
  const header = $("top");
  $("menu-toggle").addEventListener("click", () => {
    const open = header.classList.toggle("nav-open");
    $("menu-toggle").setAttribute("aria-expanded", String(open));
  });
  $("nav").addEventListener("click", (ev) => {
    if (ev.target.closest("a")) { header.classList.remove("nav-open"); $("menu-toggle").setAttribute("aria-expanded", "false"); }
  });

  // Each cell carries its column's name (data-label), shown on a phone,
  // where a table's rows become stacked cards.
  function labelCells(tbody) {
    const table = tbody.closest("table");
    const heads = table && table.tHead ? [...table.tHead.rows[0].cells].map((c) => c.textContent.trim()) : [];
    for (const tr of tbody.rows) {
      let i = 0;
      for (const cell of tr.cells) {
        if (cell.colSpan === 1 && heads[i] !== undefined && cell.dataset.label !== heads[i]) cell.dataset.label = heads[i];
        i += cell.colSpan;
      }
    }
  }
  const labeller = new MutationObserver((records) => {
    const seen = new Set();
    for (const r of records) { const tb = r.target.closest && r.target.closest("tbody"); if (tb && !seen.has(tb)) { seen.add(tb); labelCells(tb); } }
  });
  for (const tb of document.querySelectorAll("main tbody")) labeller.observe(tb, { childList: true });

  kindChanged();
  fillRangeDefaults();
  noKeyYet();
  const saved = sessionStorage.getItem(KEY_STORE);
  if (saved) { $("key").value = saved; loadAll(); }
})();
