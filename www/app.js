// The webproxyd admin panel: plain JavaScript over the JSON API under
// /api/ (README "Admin API"). No framework, no build step. The session
// lives in an HttpOnly cookie the page never sees; a 401 from any call
// brings back the login form.
'use strict';

(() => {
	const $ = (sel, root = document) => root.querySelector(sel);
	const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

	const TYPE_LABEL = { ssoNormal: 'SSO Normal', ssoSuper: 'SSO Super' };
	const STATUS_ORDER = ['active', 'cooling', 'expired', 'disabled'];
	const VIEWS = ['tokens', 'cache', 'stats', 'settings'];

	const state = {
		tokens: [],
		selected: new Set(),
		sort: { key: 'createdTime', dir: -1 },
		view: null,
		statsTimer: null,
	};

	// ---- small helpers ----------------------------------------------------

	function el(tag, attrs = {}, ...kids) {
		const e = document.createElement(tag);
		for (const [k, v] of Object.entries(attrs)) {
			if (v === undefined || v === null || v === false) continue;
			if (k === 'class') e.className = v;
			else if (k === 'text') e.textContent = v;
			else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
			else if (k === 'dataset') Object.assign(e.dataset, v);
			else e.setAttribute(k, v === true ? '' : v);
		}
		for (const kid of kids.flat()) {
			if (kid === null || kid === undefined || kid === false) continue;
			e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
		}
		return e;
	}

	function fmtBytes(n) {
		if (!Number.isFinite(n)) return '–';
		const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
		let i = 0;
		while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
		return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${u[i]}`;
	}

	function fmtNum(n) {
		return Number.isFinite(n) ? n.toLocaleString('en-US') : '–';
	}

	function fmtTime(ms) {
		if (!ms) return '';
		return new Date(ms).toLocaleString();
	}

	function fmtRel(ms) {
		if (!ms) return '–';
		const d = ms - Date.now(), a = Math.abs(d);
		const steps = [[60e3, 1e3, 's'], [3600e3, 60e3, 'min'],
			[86400e3, 3600e3, 'h'], [Infinity, 86400e3, 'd']];
		for (const [lim, unit, name] of steps) {
			if (a < lim) {
				const v = Math.max(1, Math.round(a / unit));
				return d >= 0 ? `in ${v} ${name}` : `${v} ${name} ago`;
			}
		}
		return fmtTime(ms);
	}

	function fmtDur(s) {
		const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
			m = Math.floor(s % 3600 / 60);
		if (d) return `${d} d ${h} h`;
		if (h) return `${h} h ${m} min`;
		if (m) return `${m} min`;
		return `${s} s`;
	}

	function quota(n) {
		return n < 0 ? 'unknown' : fmtNum(n);
	}

	function toast(msg, kind = 'info', ms = 4000) {
		const t = el('div', { class: `toast ${kind}`, text: msg });
		$('#toasts').append(t);
		setTimeout(() => t.classList.add('gone'), ms);
		setTimeout(() => t.remove(), ms + 400);
	}

	function splitList(s) {
		return s.split(/[,\n]/).map((x) => x.trim()).filter(Boolean);
	}

	// ---- the API -------------------------------------------------------------

	class ApiError extends Error {
		constructor(status, body) {
			const e = body && body.error ? body.error : {};
			super(e.message || `HTTP ${status}`);
			this.status = status;
			this.code = e.code;
			this.param = e.param;
		}
	}

	async function api(method, path, body) {
		const opt = { method, credentials: 'same-origin', headers: {} };
		if (method !== 'GET') {
			// Every write must say JSON: the server refuses others (415).
			opt.headers['Content-Type'] = 'application/json';
			if (body !== undefined) opt.body = JSON.stringify(body);
		}
		const r = await fetch(path, opt);
		let data = null;
		const text = await r.text();
		try { data = text ? JSON.parse(text) : null; } catch { data = null; }
		if (r.status === 401 && path !== '/api/login') {
			showLogin();
			throw new ApiError(r.status, data);
		}
		if (r.status === 403 && data && data.error && data.error.code === 'admin_disabled') {
			showView('nopass');
			throw new ApiError(r.status, data);
		}
		if (!r.ok && r.status !== 202) throw new ApiError(r.status, data);
		return { status: r.status, data, text };
	}

	function failed(e) {
		if (e instanceof ApiError && (e.status === 401 || e.code === 'admin_disabled')) return;
		toast(e.message || String(e), 'error', 6000);
	}

	// ---- views -----------------------------------------------------------------

	function showView(name) {
		for (const v of $$('.view')) v.hidden = v.id !== `view-${name}`;
		$('#booting').hidden = true;
		const inApp = VIEWS.includes(name);
		$('#nav').hidden = !inApp;
		$('#logout').hidden = !inApp;
		for (const a of $$('#nav a')) a.classList.toggle('on', a.dataset.view === name);
		state.view = name;
		clearInterval(state.statsTimer);
		state.statsTimer = null;
		if (name === 'stats')
			state.statsTimer = setInterval(() => loadStats().catch(() => {}), 5000);
	}

	function showLogin() {
		showView('login');
		$('#login-password').value = '';
		setTimeout(() => $('#login-password').focus(), 0);
	}

	function route() {
		const name = (location.hash || '#tokens').slice(1);
		const view = VIEWS.includes(name) ? name : 'tokens';
		showView(view);
		const load = { tokens: loadTokens, cache: loadCache, stats: loadStats,
			settings: loadSettings }[view];
		load().catch(failed);
	}

	async function boot() {
		try {
			await api('GET', '/api/session');
		} catch (e) {
			if (e instanceof ApiError && (e.status === 401 || e.code === 'admin_disabled')) return;
			$('#booting').textContent = `Cannot reach the admin API: ${e.message}`;
			return;
		}
		route();
	}

	// ---- login -------------------------------------------------------------------

	async function onLogin(ev) {
		ev.preventDefault();
		const err = $('#login-error'), btn = $('#login-submit');
		err.hidden = true;
		btn.disabled = true;
		btn.textContent = 'Checking…';
		try {
			await api('POST', '/api/login', { password: $('#login-password').value });
			$('#login-password').value = '';
			if (!location.hash) location.hash = '#tokens';
			route();
		} catch (e) {
			err.textContent = e.status === 401 ? 'Wrong password.' : e.message;
			err.hidden = false;
			$('#login-password').select();
		} finally {
			btn.disabled = false;
			btn.textContent = 'Log in';
		}
	}

	async function onLogout() {
		try { await api('POST', '/api/logout'); } catch { /* gone anyway */ }
		showLogin();
	}

	// ---- tokens --------------------------------------------------------------------

	async function loadTokens() {
		const { data } = await api('GET', '/api/projects/grok/tokens');
		state.tokens = data.tokens;
		const ids = new Set(state.tokens.map((t) => t.id));
		for (const id of state.selected) if (!ids.has(id)) state.selected.delete(id);
		renderTokens();
	}

	function filtered() {
		const type = $('#f-type').value, status = $('#f-status').value,
			tag = $('#f-tag').value, q = $('#f-search').value.trim().toLowerCase();
		return state.tokens.filter((t) =>
			(!type || t.type === type) && (!status || t.status === status) &&
			(!tag || t.tags.includes(tag)) &&
			(!q || t.fingerprint.toLowerCase().includes(q) ||
				t.note.toLowerCase().includes(q) || t.id === q ||
				t.tags.some((g) => g.toLowerCase().includes(q))));
	}

	function sorted(list) {
		const { key, dir } = state.sort;
		const val = (t) => {
			const v = t[key];
			if (key === 'status') return STATUS_ORDER.indexOf(v);
			return v === null || v === undefined ? -Infinity : v;
		};
		return list.slice().sort((a, b) => {
			const x = val(a), y = val(b);
			if (x < y) return -dir;
			if (x > y) return dir;
			return a.id.localeCompare(b.id, 'en', { numeric: true });
		});
	}

	function renderSummary() {
		const box = $('#tok-summary');
		const count = (f) => state.tokens.filter(f).length;
		const chip = (label, n, cls, onClick) => el('button', { class: `chip ${cls || ''}`,
			type: 'button', onclick: onClick }, el('b', { text: fmtNum(n) }), ` ${label}`);
		const setFilter = (sel, v) => () => { $(sel).value = v; renderTokens(); };
		box.replaceChildren(
			chip('tokens', state.tokens.length, '', () => {
				for (const s of ['#f-type', '#f-status', '#f-tag', '#f-search']) $(s).value = '';
				renderTokens();
			}),
			chip('SSO Normal', count((t) => t.type === 'ssoNormal'), 't-normal', setFilter('#f-type', 'ssoNormal')),
			chip('SSO Super', count((t) => t.type === 'ssoSuper'), 't-super', setFilter('#f-type', 'ssoSuper')),
			...STATUS_ORDER.map((s) => chip(s, count((t) => t.status === s), `s-${s}`,
				setFilter('#f-status', s))));
	}

	function renderTagFilter() {
		const sel = $('#f-tag'), cur = sel.value;
		const tags = [...new Set(state.tokens.flatMap((t) => t.tags))].sort();
		sel.replaceChildren(el('option', { value: '', text: 'All tags' }),
			...tags.map((g) => el('option', { value: g, text: g })));
		sel.value = tags.includes(cur) ? cur : '';
	}

	function actionButtons(t) {
		const disabled = t.status === 'disabled' || t.status === 'expired';
		return el('div', { class: 'row-actions' },
			el('button', { class: 'btn small', type: 'button', title: 'Ask grok.com for this token\'s quota',
				dataset: { act: 'test', id: t.id } }, 'Test'),
			el('button', { class: 'btn small', type: 'button', dataset: { act: 'edit', id: t.id } }, 'Edit'),
			el('button', { class: 'btn small', type: 'button', dataset: { act: disabled ? 'enable' : 'disable', id: t.id } },
				disabled ? 'Enable' : 'Disable'),
			el('button', { class: 'btn small danger', type: 'button', dataset: { act: 'delete', id: t.id } }, 'Delete'));
	}

	function tokenRow(t) {
		const td = (label, cls, ...kids) => el('td', { class: cls, 'data-label': label }, ...kids);
		const fail = t.failedCount > 0
			? el('span', { class: 'fail', title: `${t.lastFailureReason || ''}\n${fmtTime(t.lastFailureTime)}` },
				el('b', { text: t.failedCount }),
				t.lastFailureReason ? el('small', { text: ` ${t.lastFailureReason}` }) : null)
			: el('span', { class: 'muted', text: '0' });
		return el('tr', { dataset: { id: t.id }, class: state.selected.has(t.id) ? 'sel' : '' },
			el('td', { class: 'c-sel' }, el('input', { type: 'checkbox', 'aria-label': `Select ${t.fingerprint}`,
				checked: state.selected.has(t.id), dataset: { sel: t.id } })),
			td('Token', 'c-tok', el('code', { class: 'fp', text: t.fingerprint }), el('small', { class: 'muted id', text: ` #${t.id}` })),
			td('Type', '', el('span', { class: `type ${t.type === 'ssoSuper' ? 't-super' : 't-normal'}`, text: TYPE_LABEL[t.type] || t.type })),
			td('Status', '', el('span', { class: `badge s-${t.status}`, text: t.status }),
				t.inflight > 0 ? el('small', { class: 'muted', text: ` ${t.inflight} busy` }) : null),
			td('Remaining', 'num', quota(t.remainingQueries)),
			td('Heavy', 'num', t.type === 'ssoSuper' ? quota(t.heavyremainingQueries) : el('span', { class: 'muted', text: '–' })),
			td('Cooldown until', '', t.cooldownUntil ? el('span', { title: fmtTime(t.cooldownUntil), text: fmtRel(t.cooldownUntil) }) : el('span', { class: 'muted', text: '–' })),
			td('Failures', 'num', fail),
			td('Tags', 'c-tags', t.tags.length ? t.tags.map((g) => el('span', { class: 'tag', text: g })) : el('span', { class: 'muted', text: '–' })),
			td('Note', 'c-note', t.note ? el('span', { text: t.note, title: t.note }) : el('span', { class: 'muted', text: '–' })),
			td('Created', '', el('span', { title: fmtTime(t.createdTime), text: fmtRel(t.createdTime) })),
			td('Last used', '', t.lastUsedTime ? el('span', { title: fmtTime(t.lastUsedTime), text: fmtRel(t.lastUsedTime) }) : el('span', { class: 'muted', text: 'never' })),
			el('td', { class: 'c-act' }, actionButtons(t)));
	}

	function renderTokens() {
		renderSummary();
		renderTagFilter();
		const list = sorted(filtered());
		$('#tok-body').replaceChildren(...list.map(tokenRow));
		const empty = $('#tok-empty');
		empty.hidden = list.length > 0;
		empty.textContent = state.tokens.length === 0
			? 'No tokens yet. Use "Add tokens" to paste the sso cookies of your grok.com accounts.'
			: 'No token matches these filters.';
		for (const th of $$('#tok-table th[data-sort]')) {
			th.classList.toggle('sorted', th.dataset.sort === state.sort.key);
			th.dataset.dir = state.sort.dir > 0 ? 'asc' : 'desc';
		}
		const shown = list.map((t) => t.id);
		$('#sel-all').checked = shown.length > 0 && shown.every((id) => state.selected.has(id));
		renderBulk();
	}

	function renderBulk() {
		const n = state.selected.size;
		$('#bulk').hidden = n === 0;
		$('#bulk-count').textContent = `${n} selected`;
	}

	function byId(id) { return state.tokens.find((t) => t.id === id); }

	// ---- dialogs ---------------------------------------------------------------------

	function confirmBox(title, text, okLabel = 'Delete') {
		const d = $('#dlg-confirm');
		$('#confirm-title').textContent = title;
		$('#confirm-text').textContent = text;
		$('#confirm-ok').textContent = okLabel;
		return new Promise((resolve) => {
			const ok = () => { cleanup(); d.close(); resolve(true); };
			const cancel = () => { cleanup(); resolve(false); };
			const cleanup = () => {
				$('#confirm-ok').removeEventListener('click', ok);
				d.removeEventListener('close', cancel);
			};
			$('#confirm-ok').addEventListener('click', ok);
			d.addEventListener('close', cancel);
			d.showModal();
		});
	}

	function openAdd() {
		$('#add-tokens').value = '';
		$('#add-tags').value = '';
		$('#add-result').hidden = true;
		$('#add-submit').disabled = false;
		$('#add-submit').textContent = 'Add';
		$('#dlg-add').showModal();
		$('#add-tokens').focus();
	}

	function typeHint() {
		const t = $('#add-form').elements.type.value;
		$('#add-type-hint').textContent = t === 'ssoSuper'
			? 'Super tokens serve grok-4-heavy (their own heavy quota) and back up the normal pool.'
			: 'Normal tokens serve every model but grok-4-heavy.';
	}

	async function onAdd(ev) {
		ev.preventDefault();
		const text = $('#add-tokens').value;
		const type = $('#add-form').elements.type.value;
		if (!text.trim()) { $('#add-tokens').focus(); return; }
		const body = { type, tokens: text };
		const tags = splitList($('#add-tags').value);
		if (tags.length) body.tags = tags;
		const btn = $('#add-submit');
		btn.disabled = true;
		btn.textContent = 'Adding…';
		try {
			const { data } = await api('POST', '/api/projects/grok/tokens', body);
			const box = $('#add-result');
			const parts = [el('p', {}, el('b', { text: `${data.added.length} added` }),
				`, ${data.duplicates.length} already there, ${data.invalid.length} not valid.`)];
			if (data.duplicates.length)
				parts.push(el('p', { class: 'small' }, 'Already in the pool: ',
					...data.duplicates.map((f) => el('code', { text: f })).flatMap((c) => [c, ' '])));
			if (data.invalid.length)
				parts.push(el('ul', { class: 'small invalid' },
					...data.invalid.map((x) => el('li', {}, el('code', { text: x.value }), ` – ${x.reason}`))));
			box.replaceChildren(...parts);
			box.hidden = false;
			await loadTokens().catch(failed);
			if (data.duplicates.length === 0 && data.invalid.length === 0) {
				$('#dlg-add').close();
				const added = new Set(data.added);
				const per = Object.entries(TYPE_LABEL).map(([k, label]) =>
					[label, state.tokens.filter((t) => added.has(t.id) && t.type === k).length])
					.filter(([, n]) => n > 0).map(([label, n]) => `${n} ${label}`);
				toast(`Added ${per.join(' and ') || 'no'} token${data.added.length === 1 ? '' : 's'}.`, 'ok');
			} else {
				$('#add-tokens').value = '';
				btn.textContent = 'Add more';
			}
		} catch (e) {
			failed(e);
			btn.textContent = 'Add';
		} finally {
			btn.disabled = false;
		}
	}

	let editing = null;

	function openEdit(id) {
		const t = byId(id);
		if (!t) return;
		editing = id;
		$('#edit-which').textContent = `${t.fingerprint} · ${TYPE_LABEL[t.type]} · #${t.id}`;
		$('#edit-tags').value = t.tags.join(', ');
		$('#edit-note').value = t.note;
		$('#edit-enabled').checked = t.status !== 'disabled' && t.status !== 'expired';
		$('#edit-error').hidden = true;
		$('#dlg-edit').showModal();
		$('#edit-tags').focus();
	}

	async function onEdit(ev) {
		ev.preventDefault();
		const t = byId(editing);
		if (!t) { $('#dlg-edit').close(); return; }
		const body = { tags: splitList($('#edit-tags').value), note: $('#edit-note').value };
		const wasOn = t.status !== 'disabled' && t.status !== 'expired';
		const on = $('#edit-enabled').checked;
		if (on !== wasOn) body.status = on ? 'active' : 'disabled';
		try {
			await api('PATCH', `/api/projects/grok/tokens/${encodeURIComponent(editing)}`, body);
			$('#dlg-edit').close();
			toast('Saved.', 'ok');
			await loadTokens();
		} catch (e) {
			if (e.status === 400 || e.status === 404) {
				$('#edit-error').textContent = e.message;
				$('#edit-error').hidden = false;
			} else failed(e);
		}
	}

	async function setStatus(ids, status) {
		let ok = 0;
		for (const id of ids) {
			try {
				await api('PATCH', `/api/projects/grok/tokens/${encodeURIComponent(id)}`, { status });
				ok++;
			} catch (e) { failed(e); }
		}
		if (ids.length > 1) toast(`${status === 'active' ? 'Enabled' : 'Disabled'} ${ok} tokens.`, 'ok');
		await loadTokens().catch(failed);
	}

	async function remove(ids) {
		const what = ids.length === 1 ? `token ${byId(ids[0])?.fingerprint || ids[0]}` : `${ids.length} tokens`;
		if (!await confirmBox('Delete tokens', `Delete ${what} from the pool? This cannot be undone (export token.json first to keep a copy).`)) return;
		try {
			const { data } = await api('DELETE', '/api/projects/grok/tokens', { ids });
			for (const id of data.deleted) state.selected.delete(id);
			toast(`Deleted ${data.deleted.length} token${data.deleted.length === 1 ? '' : 's'}.`, 'ok');
		} catch (e) { failed(e); }
		await loadTokens().catch(failed);
	}

	async function test(id, btn) {
		btn.disabled = true;
		const old = btn.textContent;
		btn.textContent = 'Testing…';
		try {
			const { data } = await api('POST', `/api/projects/grok/tokens/${encodeURIComponent(id)}/test`);
			const rows = [['Result', el('span', { class: `badge r-${data.result}`, text: data.result })],
				['Message', data.message]];
			if (data.httpStatus) rows.push(['grok.com status', String(data.httpStatus)]);
			if ('remainingQueries' in data) rows.push(['Remaining queries', quota(data.remainingQueries)]);
			if ('heavyremainingQueries' in data) rows.push(['Heavy remaining', quota(data.heavyremainingQueries)]);
			if ('waitSeconds' in data) rows.push(['Resets in', fmtDur(data.waitSeconds)]);
			const t = byId(id);
			$('#test-title').textContent = `Token test · ${t ? t.fingerprint : id}`;
			$('#test-body').replaceChildren(el('table', { class: 'plain' },
				...rows.map(([k, v]) => el('tr', {}, el('th', { text: k }), el('td', {}, v)))));
			$('#dlg-test').showModal();
			await loadTokens().catch(failed);
		} catch (e) { failed(e); }
		finally {
			btn.disabled = false;
			btn.textContent = old;
		}
	}

	async function exportPool() {
		if (!await confirmBox('Export token.json',
			'The file holds every token in full: anyone who has it can use the accounts. Keep it safe.', 'Download'))
			return;
		try {
			const { text } = await api('GET', '/api/projects/grok/tokens/export');
			const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
			const a = el('a', { href: url, download: 'token.json' });
			document.body.append(a);
			a.click();
			a.remove();
			setTimeout(() => URL.revokeObjectURL(url), 1000);
		} catch (e) { failed(e); }
	}

	function onTableClick(ev) {
		const b = ev.target.closest('button[data-act]');
		if (b) {
			const id = b.dataset.id;
			if (b.dataset.act === 'test') test(id, b);
			else if (b.dataset.act === 'edit') openEdit(id);
			else if (b.dataset.act === 'enable') setStatus([id], 'active');
			else if (b.dataset.act === 'disable') setStatus([id], 'disabled');
			else if (b.dataset.act === 'delete') remove([id]);
			return;
		}
		const th = ev.target.closest('th[data-sort]');
		if (th) {
			const key = th.dataset.sort;
			state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : -1 };
			renderTokens();
		}
	}

	function onTableChange(ev) {
		const cb = ev.target;
		if (cb.id === 'sel-all') {
			for (const t of filtered()) {
				if (cb.checked) state.selected.add(t.id);
				else state.selected.delete(t.id);
			}
			renderTokens();
			return;
		}
		if (!cb.dataset.sel) return;
		if (cb.checked) state.selected.add(cb.dataset.sel);
		else state.selected.delete(cb.dataset.sel);
		cb.closest('tr').classList.toggle('sel', cb.checked);
		renderBulk();
	}

	// ---- cache ----------------------------------------------------------------------

	function renderCacheCard(kind, c) {
		const card = $(`.cache-card[data-kind="${kind}"]`);
		const f = (n) => $(`[data-f="${n}"]`, card);
		f('size').textContent = fmtBytes(c.bytes);
		f('files').textContent = `${fmtNum(c.files)} file${c.files === 1 ? '' : 's'}${c.clearing ? ' · clearing…' : ''}`;
		f('limit').textContent = c.maxBytes > 0 ? `limit ${fmtBytes(c.maxBytes)}` : 'no limit';
		f('meter').style.width = c.maxBytes > 0 ? `${Math.min(100, 100 * c.bytes / c.maxBytes)}%` : '0%';
	}

	async function loadCache() {
		const { data } = await api('GET', '/api/cache');
		renderCacheCard('image', data.image);
		renderCacheCard('video', data.video);
	}

	async function clearCache(kind, btn) {
		if (!await confirmBox(`Clear the ${kind} cache`,
			`Delete every cached ${kind}? Links already handed to clients stop working.`, 'Clear'))
			return;
		btn.disabled = true;
		try {
			const { status, data } = await api('DELETE', `/api/cache/${kind}`);
			renderCacheCard(kind, data.cache);
			toast(status === 202 ? `The janitor is still clearing the ${kind} cache.` : `The ${kind} cache is empty.`, 'ok');
		} catch (e) { failed(e); }
		finally { btn.disabled = false; }
	}

	// ---- statistics ----------------------------------------------------------------

	function kv(rows, head) {
		return [head ? el('tr', {}, ...head.map((h, i) => el('th', { class: i ? 'num' : '', text: h }))) : null,
			...rows.map((r) => el('tr', {}, ...r.map((c, i) => el(i ? 'td' : 'th', { class: i ? 'num' : '' }, c))))];
	}

	async function loadStats() {
		const { data: s } = await api('GET', '/api/stats');
		const card = (label, value, sub, cls) => el('div', { class: `card stat ${cls || ''}` },
			el('div', { class: 'muted small', text: label }), el('div', { class: 'big', text: value }),
			sub ? el('div', { class: 'muted small', text: sub }) : null);
		$('#stats-cards').replaceChildren(
			card('Uptime', fmtDur(s.uptimeSeconds), `since ${fmtTime(s.startedTime)}`),
			card('Requests', fmtNum(s.requests.total), `${fmtNum(s.requests.active)} in progress`),
			card('Chat completions', fmtNum(s.requests.chat)),
			card('Client errors (4xx)', fmtNum(s.requests.errors4xx), null, s.requests.errors4xx ? 'warn' : ''),
			card('Server errors (5xx)', fmtNum(s.requests.errors5xx), null, s.requests.errors5xx ? 'bad' : ''),
			card('Upstream failures', fmtNum(s.requests.upstreamErrors), null, s.requests.upstreamErrors ? 'bad' : ''),
			card('Tokens in use now', fmtNum(s.tokens.inflight), `${fmtNum(s.tokens.total)} in the pool`),
			card('Workers', fmtNum(s.workers), `${s.reloads} reloads · ${s.respawns} respawns`));
		const n = s.tokens.ssoNormal, u = s.tokens.ssoSuper;
		$('#stats-tokens').replaceChildren(...kv([
			['Active', fmtNum(n.active), fmtNum(u.active)],
			['Cooling', fmtNum(n.cooling), fmtNum(u.cooling)],
			['Expired', fmtNum(n.expired), fmtNum(u.expired)],
			['Disabled', fmtNum(n.disabled), fmtNum(u.disabled)],
			['Quota unknown', fmtNum(n.unknownQuota), fmtNum(u.unknownQuota)],
			['Quota used up', fmtNum(n.exhaustedQuota), fmtNum(u.exhaustedQuota)],
			['Known remaining queries', fmtNum(n.remainingQueries), fmtNum(u.remainingQueries)],
			['Known heavy remaining', '–', fmtNum(u.heavyremainingQueries)],
		], ['', 'SSO Normal', 'SSO Super']));
		const errs = Object.entries(s.errorsByStatus).sort(([a], [b]) => a - b);
		$('#stats-errors').replaceChildren(...(errs.length
			? kv(errs.map(([code, c]) => [code, fmtNum(c)]), ['Status', 'Answers'])
			: [el('tr', {}, el('td', { class: 'muted', text: 'No errors since the start.' }))]));
		const models = s.models.slice().sort((a, b) => b.requests - a.requests);
		$('#stats-models').replaceChildren(...(models.length
			? kv(models.map((m) => [m.model, fmtNum(m.requests), fmtNum(m.errors)]), ['Model', 'Requests', 'Errors'])
			: [el('tr', {}, el('td', { class: 'muted', text: 'No model has been asked for yet.' }))]));
		$('#stats-updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
	}

	// ---- settings -----------------------------------------------------------------

	function settingValue(v) {
		if (Array.isArray(v)) {
			if (v.length && typeof v[0] === 'object') return null; // models: own table
			return v.length ? v.join(', ') : '(empty)';
		}
		if (v === '') return '(empty)';
		return String(v);
	}

	async function loadSettings() {
		const { data } = await api('GET', '/api/settings');
		$('#settings-hint').textContent = data.hint;
		const docs = new Map(data.keys.map((k) => [k.key, k]));
		const sections = [['server', 'server', data.config.server],
			['projects.grok', 'projects.grok', data.config.projects.grok],
			['grok', 'grok', data.config.grok]];
		const out = [];
		for (const [title, prefix, obj] of sections) {
			const rows = [];
			let models = null;
			for (const [k, v] of Object.entries(obj)) {
				const d = docs.get(`${prefix}.${k}`) || {};
				const shown = settingValue(v);
				if (shown === null) { models = v; continue; }
				rows.push(el('tr', {},
					el('th', {}, el('code', { text: k })),
					el('td', { class: 'val' }, el('span', { class: shown === '(empty)' ? 'muted' : '', text: shown })),
					el('td', { class: 'apply' }, el('span', { class: `badge a-${d.apply}`, text: d.apply || '' })),
					el('td', { class: 'doc muted', text: d.doc || '' })));
			}
			out.push(el('div', { class: 'card' }, el('h2', {}, el('code', { text: title })),
				el('div', { class: 'table-wrap' }, el('table', { class: 'plain settings' }, ...rows))));
			if (models) {
				out.push(el('div', { class: 'card' }, el('h2', {}, el('code', { text: `${prefix}.models` })),
					el('div', { class: 'table-wrap' }, el('table', { class: 'plain' },
						el('tr', {}, ...['Name', 'Upstream', 'Mode', 'Pool', 'Cost', 'Video'].map((h) => el('th', { text: h }))),
						...models.map((m) => el('tr', {}, el('td', {}, el('code', { text: m.name })),
							el('td', { text: m.upstream }), el('td', { text: m.mode }),
							el('td', { text: m.pool }), el('td', { text: m.cost }),
							el('td', { text: m.video ? 'yes' : '' })))))));
			}
		}
		$('#settings-body').replaceChildren(...out);
	}

	// ---- wiring ---------------------------------------------------------------------

	function wire() {
		$('#login-form').addEventListener('submit', onLogin);
		$('#logout').addEventListener('click', onLogout);
		window.addEventListener('hashchange', route);

		$('#tok-add').addEventListener('click', openAdd);
		$('#tok-refresh').addEventListener('click', () => loadTokens().catch(failed));
		$('#tok-export').addEventListener('click', exportPool);
		$('#add-form').addEventListener('submit', onAdd);
		for (const r of $$('#add-form input[name="type"]')) r.addEventListener('change', typeHint);
		$('#edit-form').addEventListener('submit', onEdit);
		for (const b of $$('[data-close]')) b.addEventListener('click', () => b.closest('dialog').close());
		for (const s of ['#f-type', '#f-status', '#f-tag']) $(s).addEventListener('change', renderTokens);
		$('#f-search').addEventListener('input', renderTokens);
		$('#tok-table').addEventListener('click', onTableClick);
		$('#tok-table').addEventListener('change', onTableChange);
		$('#bulk-delete').addEventListener('click', () => remove([...state.selected]));
		$('#bulk-enable').addEventListener('click', () => setStatus([...state.selected], 'active'));
		$('#bulk-disable').addEventListener('click', () => setStatus([...state.selected], 'disabled'));
		$('#bulk-clear').addEventListener('click', () => { state.selected.clear(); renderTokens(); });

		$('#cache-refresh').addEventListener('click', () => loadCache().catch(failed));
		for (const b of $$('[data-clear]')) b.addEventListener('click', () => clearCache(b.dataset.clear, b));
		$('#stats-refresh').addEventListener('click', () => loadStats().catch(failed));
	}

	document.addEventListener('DOMContentLoaded', () => {
		wire();
		boot();
	});
})();
