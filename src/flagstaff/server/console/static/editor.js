/* Flagstaff console: the targeting editor for a flag's environment and for segments.
 *
 * The page embeds the definition as JSON (<script type="application/json">); this script edits
 * a copy and saves the whole definition with If-Match = the version the page was loaded at.
 * Every input carries data-field = the dotted path the engine names in validation errors, so
 * a server error lands next to the input it is about.
 */
"use strict";

(function () {
  const el = (...args) => window.fs.el(...args);
  const clone = (v) => JSON.parse(JSON.stringify(v));
  const NUMERIC = new Set(["gt", "gte", "lt", "lte"]);
  // Condition options and the operators they apply to (docs/evaluation.md §3).
  const OPTIONS = [
    ["ignore_case", "ignore case", new Set(["equals", "not_equals", "in", "not_in", "contains", "not_contains", "starts_with", "ends_with", "regex"])],
    ["lenient", "lenient versions (2, 2.0, v2.0.0)", new Set(["semver_eq", "semver_gt", "semver_lt", "semver_range"])],
  ];
  const NOW = new Set(["now_before", "now_after", "now_between"]);  // compare the evaluation time: no attribute
  const HINTS = {
    in_cidr: "10.0.0.0/8 or 2001:db8::/32, one per line", not_in_cidr: "10.0.0.0/8 or 2001:db8::/32, one per line",
    semver_range: "^1.2.3, ~1.2 or >=1.0.0 <2.0.0, one per line",
    now_before: "2025-03-01T09:00:00Z", now_after: "2025-03-01T09:00:00Z",
    now_between: "2025-03-01T09:00:00Z/2025-03-08T17:00:00Z, one window per line",
  };
  let uid = 0;
  const nextId = (p) => `${p}-${++uid}`;

  function labelled(labelText, control, extra) {
    const id = control.id || (control.id = nextId("f"));
    return el("div", { class: "field" + (extra ? " " + extra : "") }, el("label", { for: id, text: labelText }), control);
  }

  function button(text, onclick, cls, aria) {
    return el("button", { type: "button", class: cls || "", onclick, "aria-label": aria || null, text });
  }

  function valuesToText(values) {
    return (values || []).map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join("\n");
  }

  function textToValues(text, operator, original) {
    const items = text.split(/\n|,/).map((s) => s.trim()).filter((s) => s !== "");
    const typed = (original || []).some((v) => typeof v !== "string");
    return items.map((s) => {
      if (NUMERIC.has(operator) || (typed && /^-?\d+(\.\d+)?$/.test(s))) return Number(s);
      if (typed && (s === "true" || s === "false")) return s === "true";
      return s;
    });
  }

  /* --- conditions and rules (shared by flags and segments) ------------------------------- */

  function conditionEditor(ctx, cond, path, onRemove) {
    const op = el("select", { "data-field": `${path}.operator` }, ctx.operators.map((o) => el("option", { value: o, selected: o === cond.operator, text: o.replace(/_/g, " ") })));
    const attr = el("input", { value: cond.attribute || "", "data-field": `${path}.attribute`, placeholder: "e.g. country" });
    const negate = el("input", { type: "checkbox", checked: !!cond.negate, "data-field": `${path}.negate` });
    const valuesBox = el("div", { class: "values" });
    const optionsBox = el("div", { class: "options" });
    const attrField = labelled("Attribute", attr);
    const original = cond.values;
    function renderOptions() {
      optionsBox.replaceChildren();
      // .field is display:flex, which beats the hidden attribute: hide it through its style.
      attrField.style.display = NOW.has(cond.operator) ? "none" : "";
      if (NOW.has(cond.operator)) delete cond.attribute;
      for (const [name, text, operators] of OPTIONS) {
        if (!operators.has(cond.operator)) { delete cond[name]; continue; }
        const box = el("input", { type: "checkbox", checked: !!cond[name], "data-field": `${path}.${name}` });
        box.addEventListener("change", () => { if (box.checked) cond[name] = true; else delete cond[name]; });
        optionsBox.append(el("div", { class: "field check" }, box, el("label", { for: box.id = nextId("opt"), text })));
      }
      if (!NOW.has(cond.operator)) { delete cond.timezone; return; }
      const zone = el("input", { value: cond.timezone || "", "data-field": `${path}.timezone`, placeholder: "UTC, or e.g. Europe/Berlin" });
      zone.addEventListener("input", () => { if (zone.value.trim()) cond.timezone = zone.value.trim(); else delete cond.timezone; });
      optionsBox.append(labelled("Time zone of times without an offset", zone));
    }
    function renderValues() {
      valuesBox.replaceChildren();
      if (cond.operator === "exists") { valuesBox.append(el("p", { class: "muted", text: "no values needed" })); return; }
      if (cond.operator === "segment_match") {
        const sel = el("select", { multiple: true, size: Math.min(4, Math.max(2, ctx.segments.length)), "data-field": `${path}.values` },
          ctx.segments.map((s) => el("option", { value: s, selected: (cond.values || []).includes(s), text: s })));
        sel.addEventListener("change", () => { cond.values = Array.from(sel.selectedOptions).map((o) => o.value); });
        valuesBox.append(labelled("Segments", sel));
        return;
      }
      // As many rows as values (and one to add), so no value hides behind a scroll bar.
      const fit = (lines) => Math.min(12, Math.max(2, lines + 1));
      const area = el("textarea", { rows: fit((cond.values || []).length), "data-field": `${path}.values`, placeholder: HINTS[cond.operator] || "one per line" });
      area.value = valuesToText(cond.values);
      area.addEventListener("input", () => {
        cond.values = textToValues(area.value, cond.operator, original);
        area.rows = fit(area.value.split("\n").length);
      });
      valuesBox.append(labelled("Values (one per line)", area));
    }
    op.addEventListener("change", () => {
      cond.operator = op.value;
      if (op.value === "exists") cond.values = [];
      if (op.value === "segment_match") cond.values = (cond.values || []).filter((v) => ctx.segments.includes(v));
      if (!NOW.has(op.value) && cond.attribute === undefined) cond.attribute = attr.value;
      renderOptions();
      renderValues();
      row.classList.toggle("timed", NOW.has(cond.operator));
    });
    attr.addEventListener("input", () => { cond.attribute = attr.value; });
    negate.addEventListener("change", () => { cond.negate = negate.checked; });
    renderOptions();
    renderValues();
    const row = el("div", { class: "condition", role: "group", "aria-label": "Condition" },
      attrField, labelled("Operator", op), valuesBox, optionsBox,
      el("div", { class: "field check" }, negate, el("label", { for: negate.id = nextId("neg"), text: "negate" })),
      button("Remove condition", onRemove, "link danger-text"));
    // A time condition has no attribute: its columns shift left, and its values (time ranges,
    // the longest values of any operator) get the wide column instead of the operator's.
    row.classList.toggle("timed", NOW.has(cond.operator));
    return row;
  }

  function rulesEditor(ctx, rules, base, serveEditor) {
    const box = el("div", { class: "rules", "data-field": `${base}.rules` });
    function render(focusSelector) {
      box.replaceChildren();
      rules.forEach((rule, i) => {
        const path = `${base}.rules[${i}]`;
        rule.conditions = rule.conditions || [];
        const conds = el("div", { class: "conditions" });
        rule.conditions.forEach((cond, j) => conds.append(conditionEditor(ctx, cond, `${path}.conditions[${j}]`, () => { rule.conditions.splice(j, 1); render(); })));
        const idInput = el("input", { value: rule.id || "", "data-field": `${path}.id`, placeholder: "generated if empty" });
        idInput.addEventListener("input", () => { rule.id = idInput.value.trim() || undefined; });
        const desc = el("input", { value: rule.description || "", "data-field": `${path}.description` });
        desc.addEventListener("input", () => { rule.description = desc.value; });
        const move = (d) => () => { rules.splice(i + d, 0, rules.splice(i, 1)[0]); render(`[data-rule="${i + d}"] .move-${d < 0 ? "up" : "down"}`); };
        box.append(el("section", { class: "rule", "data-rule": i, "aria-label": `Rule ${i + 1}` },
          el("div", { class: "rule-head" }, el("h4", { text: `Rule ${i + 1}` }),
            el("div", { class: "actions" },
              el("button", { type: "button", class: "move-up", disabled: i === 0, onclick: move(-1), "aria-label": `Move rule ${i + 1} up`, text: "↑ Up" }),
              el("button", { type: "button", class: "move-down", disabled: i === rules.length - 1, onclick: move(1), "aria-label": `Move rule ${i + 1} down`, text: "↓ Down" }),
              button("Remove rule", () => { rules.splice(i, 1); render(); }, "danger", `Remove rule ${i + 1}`))),
          el("div", { class: "row" }, labelled("Rule id", idInput), labelled("Description", desc, "grow")),
          el("fieldset", {}, el("legend", { text: "If all of these match" }), conds,
            button("+ Add condition", () => { rule.conditions.push({ attribute: "", operator: "equals", values: [] }); render(`[data-rule="${i}"] .condition:last-child input`); })),
          serveEditor ? serveEditor(rule, "serve", `${path}.serve`, false) : null));
      });
      box.append(button("+ Add rule", () => {
        const rule = { conditions: [{ attribute: "", operator: "equals", values: [] }] };
        if (serveEditor) rule.serve = { variant: ctx.variants[0] };
        rules.push(rule);
        render(`[data-rule="${rules.length - 1}"] input`);
      }, "add-rule"));
      if (focusSelector) { const target = box.querySelector(focusSelector); if (target) target.focus(); }
    }
    render();
    return box;
  }

  /* --- serve: one variant or a percentage rollout ---------------------------------------- */

  function serveEditorFor(ctx) {
    return function (owner, prop, path, allowDefault) {
      const box = el("fieldset", { class: "serve" }, el("legend", { text: allowDefault ? "Otherwise serve (default rule)" : "Then serve" }));
      const current = owner[prop];
      const mode = el("select", { "data-field": path },
        allowDefault ? el("option", { value: "", text: `off variant (${ctx.offVariant})`, selected: !current }) : null,
        ctx.variants.map((v) => el("option", { value: "v:" + v, text: `variant ${v}`, selected: !!current && current.variant === v })),
        el("option", { value: "rollout", text: "percentage rollout", selected: !!current && !!current.rollout }));
      const detail = el("div");
      function renderRollout() {
        detail.replaceChildren();
        if (!owner[prop] || !owner[prop].rollout) return;
        const rollout = owner[prop].rollout;
        const weights = Object.fromEntries((rollout.variations || []).map((v) => [v.variant, v.weight]));
        const sum = el("p", { class: "hint", "aria-live": "polite" });
        const rpath = `${path}.rollout`;
        // The rollout's own order first: buckets are handed out in list order, so listing the
        // variations differently would move users the person never touched.
        const listed = (rollout.variations || []).map((v) => v.variant);
        const shown = listed.concat(ctx.variants.filter((v) => !listed.includes(v)));
        const inputs = shown.map((v, i) => {
          const input = el("input", { type: "number", min: 0, max: 100, step: "0.001", value: weights[v] ?? 0, "data-field": `${rpath}.variations[${i}].weight`, class: "weight" });
          input.addEventListener("input", update);
          return { variant: v, input };
        });
        const weightOf = (input) => (input.value === "" ? 0 : Number(input.value));
        function showSum() {
          const total = Math.round(inputs.reduce((a, { input }) => a + weightOf(input), 0) * 1000) / 1000;
          sum.textContent = total === 100 ? `Total ${total} % ✓` : `Total ${total} % — the weights must add up to 100 %`;
          sum.classList.toggle("error", total !== 100);
        }
        function update() {
          // Variations the rollout had keep their place (even at 0 %); others join when given weight.
          rollout.variations = inputs
            .filter(({ variant, input }) => listed.includes(variant) || weightOf(input) > 0)
            .map(({ variant, input }) => ({ variant, weight: weightOf(input) }));
          showSum();
        }
        const bucketShown = Array.isArray(rollout.bucket_by) ? rollout.bucket_by.join(", ") : rollout.bucket_by || "";
        const bucket = el("input", { value: bucketShown, placeholder: "targeting key (or several, comma-separated: the first present)", "data-field": `${rpath}.bucket_by` });
        bucket.addEventListener("input", () => {
          const paths = bucket.value.split(",").map((p) => p.trim()).filter(Boolean);
          if (paths.length > 1) rollout.bucket_by = paths; else if (paths.length) rollout.bucket_by = paths[0]; else delete rollout.bucket_by;
        });
        detail.append(el("div", { class: "weights", "data-field": `${rpath}.variations` },
          inputs.map(({ variant, input }) => labelled(`${variant} %`, input))), sum, labelled("Bucket by attribute", bucket));
        showSum();
      }
      mode.addEventListener("change", () => {
        if (mode.value === "") owner[prop] = null;
        else if (mode.value === "rollout") {
          const even = Math.floor(100000 / ctx.variants.length) / 1000;
          const variations = ctx.variants.map((v, i) => ({ variant: v, weight: i === 0 ? Math.round((100 - even * (ctx.variants.length - 1)) * 1000) / 1000 : even }));
          owner[prop] = { rollout: { variations } };
        } else owner[prop] = { variant: mode.value.slice(2) };
        renderRollout();
      });
      box.append(labelled("Serve", mode), detail);
      renderRollout();
      return box;
    };
  }

  /* --- the flag editor ---------------------------------------------------------------------- */

  function listArea(label, values, field, onchange) {
    const area = el("textarea", { rows: 2, "data-field": field, placeholder: "one per line" });
    area.value = (values || []).join("\n");
    area.addEventListener("input", () => onchange(area.value.split(/\n|,/).map((s) => s.trim()).filter(Boolean)));
    return labelled(label, area);
  }

  function flagEditor(root, data) {
    let flag = clone(data.flag);
    const env = data.env;
    const base = `environments.${env}`;
    const cfg = clone(flag.environments[env] || { enabled: false });
    for (const k of ["prerequisites", "targets", "rules"]) cfg[k] = cfg[k] || [];
    const ctx = { operators: data.operators, segments: data.segments, variants: Object.keys(flag.variants), offVariant: flag.off_variant };
    const serve = serveEditorFor(ctx);
    const targets = Object.fromEntries(ctx.variants.map((v) => [v, (cfg.targets.find((t) => t.variant === v) || {}).values || []]));
    const targetAreas = {};
    const targetBox = el("div", { class: "targets", "data-field": `${base}.targets` }, ctx.variants.map((v) => {
      const wrapper = listArea(`Serve ${v} to these targeting keys`, targets[v], "", (vals) => { targets[v] = vals; });
      targetAreas[v] = wrapper.querySelector("textarea");
      return wrapper;
    }));
    const prereqBox = el("div", { class: "prereqs", "data-field": `${base}.prerequisites` });
    function renderPrereqs() {
      prereqBox.replaceChildren();
      cfg.prerequisites.forEach((p, i) => {
        const path = `${base}.prerequisites[${i}]`;
        const keys = Object.keys(data.flags);
        const flagSel = el("select", { "data-field": `${path}.flag` }, keys.map((k) => el("option", { value: k, selected: k === p.flag, text: k })));
        const chosen = p.off ? [] : p.variants || [p.variant];
        const mode = el("select", { "data-field": path },
          el("option", { value: "one", text: "serves variant", selected: !p.off && !p.variants }),
          el("option", { value: "any", text: "serves any of", selected: !!p.variants }),
          el("option", { value: "off", text: "is off", selected: !!p.off }));
        const varSel = el("select", { "data-field": p.variants ? `${path}.variants` : `${path}.variant`, multiple: !!p.variants, hidden: !!p.off },
          (data.flags[p.flag] || []).map((v) => el("option", { value: v, selected: chosen.includes(v), text: v })));
        const first = () => (data.flags[p.flag] || [])[0];
        flagSel.addEventListener("change", () => { p.flag = flagSel.value; if (!p.off) { delete p.variants; p.variant = first(); } renderPrereqs(); });
        mode.addEventListener("change", () => {
          const picked = p.variants || (p.variant ? [p.variant] : [first()]);
          for (const k of ["variant", "variants", "off"]) delete p[k];
          if (mode.value === "off") p.off = true; else if (mode.value === "any") p.variants = picked; else p.variant = picked[0];
          renderPrereqs();
        });
        varSel.addEventListener("change", () => {
          const values = Array.from(varSel.selectedOptions).map((o) => o.value);
          if (p.variants) p.variants = values; else p.variant = values[0];
        });
        prereqBox.append(el("div", { class: "row", role: "group", "aria-label": `Prerequisite ${i + 1}` },
          labelled("Flag", flagSel), labelled("Requirement", mode), p.off ? null : labelled("variant", varSel),
          button("Remove", () => { cfg.prerequisites.splice(i, 1); renderPrereqs(); }, "link danger-text", `Remove prerequisite ${i + 1}`)));
      });
      const keys = Object.keys(data.flags);
      if (keys.length) prereqBox.append(button("+ Add prerequisite", () => { cfg.prerequisites.push({ flag: keys[0], variant: data.flags[keys[0]][0] }); renderPrereqs(); }));
      else prereqBox.append(el("p", { class: "muted", text: "No other flags to depend on." }));
    }
    renderPrereqs();

    const settings = el("details", { class: "settings" }, el("summary", { text: "Flag settings (name, tags, variants)" }));
    const field = (label, name, value, tag) => {
      const input = el(tag || "input", { "data-field": name });
      input.value = value;
      input.addEventListener("input", () => {
        if (name === "tags") flag.tags = input.value.split(",").map((s) => s.trim()).filter(Boolean);
        else if (name === "variants") { try { flag.variants = JSON.parse(input.value); input.removeAttribute("aria-invalid"); } catch (e) { input.setAttribute("aria-invalid", "true"); } }
        else flag[name] = input.value;
      });
      return labelled(label, input);
    };
    settings.append(field("Name", "name", flag.name), field("Description", "description", flag.description || "", "textarea"),
      field("Owner", "owner", flag.owner || ""), field("Tags (comma-separated)", "tags", (flag.tags || []).join(", ")),
      field("Off variant", "off_variant", flag.off_variant));
    if (flag.type !== "boolean") settings.append(field("Variants (JSON object)", "variants", JSON.stringify(flag.variants, null, 2), "textarea"));

    const status = el("p", { class: "save-status", role: "status" });
    const save = el("button", { type: "submit", class: "primary", text: `Save ${env}` });
    const form = el("form", { class: "editor", "aria-label": `Targeting in ${env}` },
      el("h3", { text: "Individual targets" }), targetBox,
      el("h3", { text: "Prerequisites" }), prereqBox,
      el("h3", { text: "Rules" }), el("p", { class: "muted", text: "Evaluated top to bottom; the first matching rule serves." }),
      rulesEditor(ctx, cfg.rules, base, serve),
      el("h3", { text: "Default" }), serve(cfg, "fallthrough", `${base}.fallthrough`, true),
      settings, el("p", { class: "error form-error", role: "alert", hidden: true }),
      el("div", { class: "savebar" }, save, status));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      window.fs.clearErrors(form);
      const out = clone(flag);
      const built = clone(cfg);
      built.targets = [];
      // Target lists in their stored order, then lists for variants that had none.
      const stored = (cfg.targets || []).map((t) => t.variant);
      for (const v of stored.concat(ctx.variants.filter((x) => !stored.includes(x)))) {
        if (!targetAreas[v]) continue;
        targetAreas[v].dataset.field = "";
        if (targets[v].length) { targetAreas[v].dataset.field = `${base}.targets[${built.targets.length}].values`; built.targets.push({ variant: v, values: targets[v] }); }
      }
      // An environment the flag did not mention stays unmentioned while it is left as it was.
      const untouched = !built.enabled && !built.fallthrough && !built.experiment && !built.targets.length && !built.rules.length && !built.prerequisites.length;
      if (!untouched || env in out.environments) out.environments[env] = built;
      status.textContent = "Saving…";
      try {
        const result = await window.fs.api("PUT", `/ui/api/flags/${encodeURIComponent(flag.key)}`, out, { ifMatch: window.fs.pageVersion() });
        const moved = (result.reassigned || []).map((d) => `${d.path} ${window.fs.reassignedText(d)}`);
        status.textContent = result.changed === false ? `No changes to save (version ${result.flag.version}).`
          : [`Saved (version ${result.flag.version}).`, ...moved].join(" ");
        status.classList.toggle("reassign", moved.length > 0);
        await window.fs.afterFlagWrite(result);
      } catch (error) {
        status.textContent = "Not saved.";
        window.fs.showErrors(form, error);
      }
    });
    root.replaceChildren(form);
    window.fsEditor = {
      reloadFlag(fresh) {
        // Our own write: keep the edits, take the server's version and on/off states.
        const edited = flag;
        flag = clone(fresh);
        for (const k of ["name", "description", "owner", "tags", "off_variant", "variants"]) flag[k] = edited[k];
        cfg.enabled = (fresh.environments[env] || {}).enabled || false;
      },
    };
  }

  /* --- the segment editor ------------------------------------------------------------------- */

  function segmentEditor(root, data) {
    const seg = clone(data.segment);
    seg.rules = seg.rules || [];
    const ctx = { operators: data.operators, segments: data.segments.filter((k) => k !== seg.key), variants: [] };
    const status = el("p", { class: "save-status", role: "status" });
    const form = el("form", { class: "editor", "aria-label": "Segment" },
      listArea("Always included (targeting keys)", seg.included, "included", (v) => { seg.included = v; }),
      listArea("Always excluded (targeting keys)", seg.excluded, "excluded", (v) => { seg.excluded = v; }),
      el("h3", { text: "Rules (any rule matches)" }), rulesEditor(ctx, seg.rules, "rules", null),
      el("p", { class: "error form-error", role: "alert", hidden: true }),
      el("div", { class: "savebar" }, el("button", { type: "submit", class: "primary", text: "Save segment" }), status));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      window.fs.clearErrors(form);
      try {
        const result = await window.fs.api("PUT", `/ui/api/segments/${encodeURIComponent(seg.key)}`, seg, { ifMatch: window.fs.pageVersion() });
        document.body.dataset.version = result.segment.version;
        status.textContent = `Saved (version ${result.segment.version}).`;
      } catch (error) { status.textContent = "Not saved."; window.fs.showErrors(form, error); }
    });
    root.replaceChildren(form);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("editor");
    if (!root) return;
    const flagData = document.getElementById("flag-data");
    const segmentData = document.getElementById("segment-data");
    if (flagData) flagEditor(root, JSON.parse(flagData.textContent));
    else if (segmentData) segmentEditor(root, JSON.parse(segmentData.textContent));
  });
})();
