// The page of `dsgitops ui`. It draws what the server's view models return (lib/ui/view-models.ts)
// and follows their live updates (server-sent events); it computes nothing about the rollout itself.
'use strict';
(function () {
  const token = document.body.dataset.token;
  const actionsAllowed = document.body.dataset.actions === 'on';
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s == null ? '' : s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const api = (path) => `${path}${path.includes('?') ? '&' : '?'}token=${token}`;
  const state = { key: undefined, page: undefined, chart: undefined, source: undefined };
  window.dsgitops = state;

  $('mode').textContent = actionsAllowed ? 'actions allowed (each asks for confirmation)' : 'read-only';

  function when(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? esc(iso) : d.toISOString().replace('T', ' ').slice(0, 19);
  }

  // ---- the cluster ---------------------------------------------------------------------------
  function renderCluster(c) {
    $('cluster-name').textContent = c.cluster;
    const rows = c.daemonSets.map((d) => {
      const lp = d.lastPass ? `${esc(d.lastPass.result)} ${when(d.lastPass.at)}` : '';
      const problem = d.problem ? `<div class="problem">${esc(d.problem.file ? `${d.problem.file}: ` : '')}${esc(d.problem.message)}</div>` : '';
      return `<tr data-key="${esc(d.key)}" class="${d.key === state.key ? 'selected' : ''}">` +
        `<td>${esc(d.key)}${d.mode === 'managed' ? ' <small>(managed)</small>' : ''}${problem}</td>` +
        `<td>${esc(d.revision ?? '-')}</td>` +
        `<td class="phase-${esc(d.phase)}">${esc(d.phase)}${d.paused ? ' (paused)' : ''}</td>` +
        `<td>${d.desired === undefined ? '-' : `${esc(d.upToDate)}/${esc(d.desired)} updated, ${esc(d.available)} available`}</td>` +
        `<td>${d.commit ? `<code>${esc(d.commit.short)}</code> ${esc(d.commit.subject)}` : '-'}</td>` +
        `<td>${d.pin ? `revision ${esc(d.pin.revision)}: ${esc(d.pin.reason)}` : '-'}</td>` +
        `<td>${lp}</td></tr>`;
    });
    $('daemonsets').tBodies[0].innerHTML = rows.join('') || '<tr><td colspan="7">no DaemonSets managed by daemonset-gitops</td></tr>';
    renderPass(c.lastPass);
  }

  // The last pass (the last one that changed something or found something new), and its problems by file.
  const KIND = { invalid: ['✕', 'invalid'], refused: ['⊘', 'refused'], held: ['⏸', 'held'], failed: ['⚠', 'failed'], warning: ['!', 'warning'] };
  function renderPass(p) {
    if (!p) { $('pass').innerHTML = '<p class="note">no pass recorded yet</p>'; $('problems').innerHTML = '<p class="note">none</p>'; return; }
    if (p.note) { $('pass').innerHTML = `<p class="problem">${esc(p.note)}</p>`; $('problems').innerHTML = ''; return; }
    $('pass').innerHTML = `<p data-run="${esc(p.runId)}"><span class="result-${esc(p.result)}">${esc(p.result)}</span> · ${when(p.at)} · ${esc(p.counts)}` +
      `${p.commit ? ` · <code>${esc(p.commit.short)}</code> ${esc(p.commit.subject)}` : ''}</p>` +
      (p.error ? `<p class="problem">${esc(p.error)}</p>` : '') +
      (p.lines.length ? `<ul class="pass-lines">${p.lines.map((l) => `<li data-key="${esc(l.key)}" class="${l.serious ? 'problem' : ''}"><b>${esc(l.key)}</b> ${esc(l.text)}</li>`).join('')}</ul>` : '<p class="note">every DaemonSet unchanged</p>') +
      (p.omitted ? `<p class="note">${esc(p.omitted)}</p>` : '') +
      '<p class="note">A pass that changes nothing and finds nothing new writes nothing: this is the last pass that did.</p>';
    $('problems').innerHTML = p.byFile.length ? p.byFile.map((f) => `<div class="file" data-file="${esc(f.file)}"><h4>${esc(f.file)}</h4><ul>` +
      f.problems.map((x) => `<li data-kind="${esc(x.kind)}"><span class="kind kind-${esc(x.kind)}" title="${esc(KIND[x.kind][1])}">${esc(KIND[x.kind][0])} ${esc(KIND[x.kind][1])}</span> ` +
        `${x.document !== undefined ? `document ${esc(x.document)}: ` : ''}${x.subject ? `<b>${esc(x.subject)}</b>${x.neverApplied ? ' <small>(never applied)</small>' : ''}: ` : ''}${esc(x.message)}</li>`).join('') +
      '</ul></div>').join('') : '<p class="note">none: the last pass found nothing wrong</p>';
  }

  $('daemonsets').addEventListener('click', (e) => {
    const tr = e.target.closest('tr[data-key]');
    if (tr) location.hash = `ds=${tr.dataset.key}`;
  });

  // ---- a DaemonSet ---------------------------------------------------------------------------
  function renderLegend(legend) {
    $('legend').innerHTML = Object.entries(legend).map(([s, l]) => `<span><span class="swatch state-${esc(s)}">${esc(l.glyph)}</span>${esc(l.label)}</span>`).join('') +
      '<span><span class="swatch legend-old">r1</span>dashed border: an older revision than the current one</span>';
  }

  function renderGrid(p) {
    $('grid').innerHTML = p.groups.map((g) => `<div class="group" data-group="${esc(g.label)}"><h4>${esc(g.label)} (${g.tiles.length})</h4><div class="tiles">` +
      g.tiles.map((t) => `<div class="tile state-${esc(t.state)}${t.updated || t.state === 'not-desired' ? '' : ' old'}" title="${esc(`${t.node}: ${p.legend[t.state].label}${t.canary ? ' (canary)' : ''} — ${t.reason}`)}" ` +
        `data-node="${esc(t.node)}" data-state="${esc(t.state)}" data-revision="${esc(t.revision ?? '')}" data-updated="${t.updated}">` +
        `<span class="glyph" aria-hidden="true">${esc(p.legend[t.state].glyph)}</span><span>${t.revision !== undefined ? `r${esc(t.revision)}` : '–'}</span></div>`).join('') +
      '</div></div>').join('') || '<p class="note">no nodes</p>';
  }

  function drawBands(u) {
    const bands = (state.page && state.page.chart.bands) || [];
    const ctx = u.ctx;
    const colours = { 'canary-hold': 'rgba(191,135,0,.18)', wave: 'rgba(9,105,218,.07)', paused: 'rgba(140,149,159,.25)', stalled: 'rgba(207,34,46,.15)' };
    ctx.save();
    bands.forEach((b, i) => {
      const x0 = u.valToPos(b.from, 'x', true);
      const x1 = u.valToPos(b.to, 'x', true);
      const top = u.bbox.top;
      const h = u.bbox.height;
      ctx.fillStyle = b.kind === 'wave' && i % 2 ? 'rgba(9,105,218,.13)' : colours[b.kind];
      ctx.fillRect(x0, top, Math.max(1, x1 - x0), h);
      ctx.fillStyle = '#57606a';
      ctx.font = `${10 * devicePixelRatio}px system-ui`;
      ctx.fillText(b.label, x0 + 2, top + (b.kind === 'wave' ? 12 : 24) * devicePixelRatio);
    });
    ctx.restore();
  }

  function renderChart(p) {
    // app.js runs before uPlot has loaded, so that the data is asked for at once: the chart waits for it.
    if (typeof uPlot === 'undefined') { window.addEventListener('load', () => renderChart(state.page || p), { once: true }); return; }
    const c = p.chart;
    const data = [c.t, c.unavailable, c.budget, c.updated];
    state.chart = { t: c.t, unavailable: c.unavailable, budget: c.budget, updated: c.updated, bands: c.bands };
    $('chart-note').textContent = c.t.length
      ? (p.row.mode === 'managed' ? `${c.t.length} points from the rollout's timeline in S3; bands: canary hold, waves, pauses, stall` : `${c.t.length} points from the native rollout's timeline in S3: the DaemonSet controller's own counts as the reconciler watched them, against its budget (maxUnavailable)`)
      : 'no timeline kept for this revision yet (a revision applied before timelines were kept, or one not watched yet)';
    $('chart').dataset.points = String(c.t.length);
    // From the window, not the element: measuring the element would force a layout of the whole page first.
    const width = Math.max(320, Math.min(1400, Math.floor(window.innerWidth - Math.min(34 * 14, window.innerWidth * 0.4) - 80)));
    if (state.plot && state.plot.width !== width) { state.plot.destroy(); state.plot = undefined; }
    if (!state.plot) {
      $('chart').innerHTML = '';
      state.plot = new uPlot({
        width, height: 220,
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max, 1) + 1] } },
        series: [{},
          { label: 'unavailable', stroke: '#cf222e', width: 2, paths: uPlot.paths.stepped({ align: 1 }) },
          { label: 'budget (maxUnavailable)', stroke: '#1f2328', width: 1.5, dash: [6, 4], paths: uPlot.paths.stepped({ align: 1 }) },
          { label: 'updated', stroke: '#1a7f37', width: 2, paths: uPlot.paths.stepped({ align: 1 }) }],
        axes: [{}, { label: 'nodes' }],
        hooks: { drawClear: [drawBands] },
      }, data, $('chart'));
    } else {
      state.plot.setData(data);
    }
  }

  function renderRevisions(p) {
    const rows = p.revisions.map((r, i) => `<tr data-revision="${r.revision}"><td><input type="radio" name="diff-a" value="${r.revision}"${i === 1 ? ' checked' : ''}></td><td><input type="radio" name="diff-b" value="${r.revision}"${i === 0 ? ' checked' : ''}></td>` +
      `<td>${r.revision}${r.current ? ' <b>current</b>' : ''}${r.pinned ? ' · pinned' : ''}</td>` +
      `<td>${esc(r.cause)}${r.rollbackTo ? ` to ${r.rollbackTo}` : ''}${r.reason ? `: ${esc(r.reason)}` : ''}</td>` +
      `<td>${r.commit ? `<code>${esc(r.commit.short)}</code> ${esc(r.commit.subject)}` : '-'}</td>` +
      `<td>${when(r.appliedAt)}</td><td>${esc(r.outcome)}${r.outcomeReason ? `: ${esc(r.outcomeReason)}` : ''}</td><td>${esc(r.images.join(', '))}</td></tr>`);
    const checked = (n) => { const el = document.querySelector(`input[name=${n}]:checked`); return el && el.value; };
    const a = checked('diff-a');
    const b = checked('diff-b');
    $('revisions').tBodies[0].innerHTML = rows.join('');
    if (a === b) return;
    for (const [n, v] of [['diff-a', a], ['diff-b', b]]) {
      const el = v && document.querySelector(`input[name=${n}][value="${v}"]`);
      if (el) el.checked = true;
    }
  }

  function renderActions(p) {
    if (!actionsAllowed) { $('actions').hidden = true; return; }
    $('actions').hidden = false;
    const options = p.revisions.filter((r) => !r.current).map((r) => `<option value="${r.revision}">revision ${r.revision} (${esc(r.outcome)})</option>`).join('');
    if ($('actions').dataset.key !== p.key || $('actions').dataset.options !== options) {
      $('actions').dataset.key = p.key;
      $('actions').dataset.options = options;
      $('actions').innerHTML = `<button type="button" data-action="pause">pause</button><button type="button" data-action="resume">resume</button><button type="button" data-action="unpin">unpin</button>` +
        ` <label>roll back to <select id="rollback-to">${options}</select></label> <button type="button" data-action="rollback">roll back</button> <span id="action-result" role="status"></span>`;
    }
  }

  function renderDetail(p) {
    if (p.error) { $('ds-phase').textContent = p.error; return; }
    state.page = p;
    $('detail').hidden = false;
    $('ds-title').textContent = p.key;
    const r = p.row;
    $('ds-phase').innerHTML = `<span class="phase-${esc(r.phase)}">${esc(r.phase)}</span> · revision ${esc(r.revision ?? '-')} · ${esc(r.mode)}${r.paused ? ' · paused' : ''}${r.pin ? ` · pinned to revision ${esc(r.pin.revision)}: ${esc(r.pin.reason)}` : ''} · budget ${esc(p.budget)}<br><small>${esc(r.message || '')}</small>`;
    $('stall').hidden = !p.stallReason;
    $('stall').textContent = p.stallReason ? `stalled: ${p.stallReason}` : '';
    renderLegend(p.legend);
    renderGrid(p);
    renderChart(p);
    renderRevisions(p);
    renderActions(p);
    $('ds-pass').textContent = p.pass ? `in the last recorded pass: ${p.pass.text}` : '';
    $('last-pass').textContent = r.lastPass ? `${when(r.lastPass.at)}: ${r.lastPass.result}${r.lastPass.revision ? ` revision ${r.lastPass.revision}` : ''}${r.lastPass.message ? ` — ${r.lastPass.message}` : ''}` : 'no pass recorded';
    $('events').tBodies[0].innerHTML = p.events.map((e) => `<tr><td>${esc(e.type)}</td><td>${esc(e.reason)}</td><td>${esc(e.message)}</td><td>${esc(e.count)}</td><td>${when(e.last)}</td></tr>`).join('') || `<tr><td colspan="5">${esc(p.eventsProblem || 'no Events')}</td></tr>`;
    document.body.dataset.rendered = p.at;
  }

  $('diff-button').addEventListener('click', async () => {
    const a = document.querySelector('input[name=diff-a]:checked');
    const b = document.querySelector('input[name=diff-b]:checked');
    if (!a || !b) return;
    const [ns, name] = state.key.split('/');
    const res = await fetch(api(`/api/daemonsets/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/diff?a=${a.value}&b=${b.value}`));
    $('diff').hidden = false;
    $('diff').textContent = await res.text();
  });

  // ---- actions -------------------------------------------------------------------------------
  $('actions').addEventListener('click', (e) => {
    const button = e.target.closest('button[data-action]');
    if (!button) return;
    const action = button.dataset.action;
    const toRevision = action === 'rollback' ? Number($('rollback-to').value) : undefined;
    $('confirm-text').textContent = action === 'rollback' ? `Roll ${state.key} back to revision ${toRevision} and pin it there?` : `${action} ${state.key}?`;
    $('confirm-key').textContent = state.key;
    $('confirm-input').value = '';
    $('confirm-reason').value = '';
    const dialog = $('confirm');
    dialog.onclose = async () => {
      if (dialog.returnValue !== 'ok') return;
      const [ns, name] = state.key.split('/');
      $('action-result').textContent = `${action}: working…`;
      const res = await fetch(api(`/api/daemonsets/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/actions/${action}`), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ confirm: $('confirm-input').value, reason: $('confirm-reason').value || undefined, toRevision }),
      });
      const body = await res.json().catch(() => ({}));
      $('action-result').textContent = res.ok ? `${action}: ${body.message}` : `${action} refused: ${body.error}`;
      $('action-result').dataset.ok = String(res.ok);
    };
    dialog.showModal();
  });

  // ---- the fleet (FLEET_FILE set): waves, clusters, the promotion and its history --------------
  function commit(c) { return c ? `<code title="${esc(c.sha)}">${esc(c.short)}</code>` : '-'; }
  function renderFleet(f) {
    if (!f || !f.configured) { $('fleet').hidden = true; return; }
    state.fleet = f;
    $('fleet').hidden = false;
    if (f.problem) { $('fleet-promotion').innerHTML = `<span class="problem">${esc(f.problem)}</span>`; return; }
    const p = f.promotion;
    $('fleet-promotion').innerHTML = (p ? `promotion of ${commit(p.commit)} <b data-status="${esc(p.status)}">${esc(p.status)}</b>${p.wave ? ` at wave <b>${esc(p.wave)}</b>` : ''}, started by ${esc(p.by)} ${when(p.startedAt)}${p.reason ? ` (${esc(p.reason)})` : ''}` : 'no promotion yet') +
      ` · head ${commit(f.head)}<br><small>next: <span id="fleet-next">${esc(f.next)}</span></small>`;
    $('fleet-stopped').hidden = !f.stopped;
    $('fleet-stopped').innerHTML = f.stopped ? `✕ stopped${f.stopped.wave ? ` in wave <b>${esc(f.stopped.wave)}</b>` : ''} at cluster <b>${esc(f.stopped.cluster)}</b>${f.stopped.daemonSet ? `, DaemonSet <b>${esc(f.stopped.daemonSet)}</b>` : ''}: ${esc(f.stopped.reason)} <small>${when(f.stopped.at)}</small>` : '';
    $('fleet-held').hidden = !f.held;
    $('fleet-held').innerHTML = f.held ? `‖ held by <b>${esc(f.held.by)}</b> ${when(f.held.at)}${f.held.reason ? `: ${esc(f.held.reason)}` : ''}` : '';
    $('fleet-legend').innerHTML = Object.entries(f.legend).map(([s, l]) => `<span><span class="swatch fleet-${esc(s)}">${esc(l.glyph)}</span>${esc(l.label)}</span>`).join('');
    $('fleet-waves').innerHTML = `<div class="waves">${f.waves.map((w) => `<div class="wave${w.current ? ' current' : ''}" data-wave="${esc(w.name)}">` +
      `<h3>${esc(w.name)}${w.current ? ' ▶ <small>in flight</small>' : ''} <small>soak ${esc(w.soakSeconds)}s${w.soakRemainingSeconds !== undefined ? `, ${esc(w.soakRemainingSeconds)}s left` : ''}${w.maintenanceUntil ? ` · ◷ maintenance until ${when(w.maintenanceUntil)}` : ''}</small></h3>` +
      w.clusters.map((c) => `<div class="fleet-cluster" data-cluster="${esc(c.name)}" data-state="${esc(c.state)}" data-runs="${esc(c.runs ? c.runs.sha : '')}">` +
        `<span class="badge fleet-${esc(c.state)}" title="${esc(f.legend[c.state].label)}" aria-hidden="true">${esc(f.legend[c.state].glyph)}</span>` +
        `<div><b>${c.servedHere ? `<a href="#cluster" title="this page's cluster">${esc(c.name)}</a>` : esc(c.name)}</b> ${esc(f.legend[c.state].label)}` +
        `<br>runs ${commit(c.runs)}${c.inFlight ? ` · in flight ${commit(c.inFlight)}` : ''}${c.lastPass ? ` · last pass ${esc(c.lastPass.result)} at <code>${esc(c.lastPass.commit)}</code> ${when(c.lastPass.at)}` : ''}` +
        `${c.reason || c.daemonSet ? `<br><span class="reason">${c.daemonSet ? `${esc(c.daemonSet)}: ` : ''}${esc(c.reason || '')}</span>` : ''}` +
        `${c.servedHere ? '' : '<br><span class="reason">its DaemonSets: dsgitops ui with this cluster as CLUSTER_NAME</span>'}</div></div>`).join('') +
      '</div>').join('')}</div>`;
    $('fleet-history').tBodies[0].innerHTML = f.history.map((h) => `<tr class="${h.byHand ? 'by-hand' : ''}" data-event="${esc(h.event)}"><td>${when(h.at)}</td><td>${esc(h.event)}${h.clusters ? ` [${esc(h.clusters.join(', '))}]` : ''}</td><td>${esc(h.wave || '')}</td><td><code>${esc(h.commit)}</code></td><td>${esc(h.by)}</td><td>${esc(h.reason || '')}</td></tr>`).join('') ||
      '<tr><td colspan="6">no events yet</td></tr>';
    if (!actionsAllowed || !f.action) { $('fleet-actions').hidden = true; return; }
    $('fleet-actions').hidden = false;
    if ($('fleet-actions').dataset.action !== f.action) {
      $('fleet-actions').dataset.action = f.action;
      $('fleet-actions').innerHTML = `<button type="button" data-fleet-action="${esc(f.action)}">${f.action === 'hold' ? '‖ hold the promotion' : '▶ resume the promotion'}</button> <span id="fleet-action-result" role="status"></span>`;
    }
  }

  $('fleet-actions').addEventListener('click', (e) => {
    const button = e.target.closest('button[data-fleet-action]');
    if (!button || !state.fleet || !state.fleet.promotion) return;
    const action = button.dataset.fleetAction;
    const short = state.fleet.promotion.commit.short;
    $('fleet-confirm-text').textContent = action === 'hold' ? `Hold the promotion of ${short} where it is? Nothing more is promoted until it is resumed.` : `Resume the promotion of ${short} from where it was held?`;
    $('fleet-confirm-key').textContent = short;
    $('fleet-confirm-input').value = '';
    $('fleet-confirm-reason').value = '';
    const dialog = $('fleet-confirm');
    dialog.onclose = async () => {
      if (dialog.returnValue !== 'ok') return;
      const result = () => $('fleet-action-result');
      result().textContent = `${action}: working…`;
      const res = await fetch(api(`/api/fleet/actions/${action}`), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ confirm: $('fleet-confirm-input').value, reason: $('fleet-confirm-reason').value }),
      });
      const body = await res.json().catch(() => ({}));
      const el = result() || $('fleet-actions');
      el.textContent = res.ok ? `${action}: ${body.message}` : `${action} refused: ${body.error}`;
      el.dataset.ok = String(res.ok);
    };
    dialog.showModal();
  });

  // ---- live ----------------------------------------------------------------------------------
  function connect() {
    if (state.source) state.source.close();
    const source = new EventSource(api(`/api/live${state.key ? `?ds=${encodeURIComponent(state.key)}` : ''}`));
    state.source = source;
    source.addEventListener('open', () => { $('live').textContent = 'live'; $('live').className = 'live on'; });
    source.addEventListener('error', () => { $('live').textContent = 'reconnecting…'; $('live').className = 'live off'; });
    source.addEventListener('cluster', (e) => renderCluster(JSON.parse(e.data)));
    source.addEventListener('fleet', (e) => renderFleet(JSON.parse(e.data)));
    source.addEventListener('daemonset', (e) => { const p = JSON.parse(e.data); if (!state.key || p.key === state.key || p.error) renderDetail(p); });
  }

  function keyOfHash() {
    const m = /^#ds=(.+)$/.exec(location.hash);
    return m ? decodeURIComponent(m[1]) : undefined;
  }
  function load(key) {
    const json = (r) => r.json();
    const ds = key ? key.split('/') : undefined;
    return {
      cluster: fetch(api('/api/cluster')).then(json),
      daemonSet: ds ? fetch(api(`/api/daemonsets/${encodeURIComponent(ds[0])}/${encodeURIComponent(ds[1])}`)).then(json) : undefined,
    };
  }
  // Asked for before the page is even parsed to the end.
  let early = load(keyOfHash());

  async function show() {
    state.key = keyOfHash();
    const data = early || load(state.key);
    early = undefined;
    document.querySelector('main').className = state.key ? '' : 'one';
    $('detail').hidden = !state.key;
    const first = [data.cluster.then(renderCluster)];
    if (data.daemonSet) first.push(data.daemonSet.then((p) => renderDetail(p.error ? { error: p.error } : p)));
    await Promise.all(first);
    // The first paint with data (the frame after the render, once drawn): what bench/ui-first-paint.ts measures.
    requestAnimationFrame(() => setTimeout(() => {
      if (state.paintedAt === undefined) state.paintedAt = performance.now();
      document.body.dataset.painted = 'yes';
      // The fleet is asked for only once the cluster's first paint is on screen, which it must not slow.
      if (!state.fleetAsked) {
        state.fleetAsked = true;
        fetch(api('/api/fleet')).then((r) => r.json()).then(renderFleet, () => undefined);
      }
    }, 0));
    connect();
  }
  window.addEventListener('hashchange', show);
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', show, { once: true });
  else show();
}());
