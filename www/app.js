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

	// ---- language: English, or Chinese (简体中文) ---------------------------
	// Static text is translated by exact match of its English, dynamic text
	// through t(); a switch reloads the page.
	const LANG_KEY = 'webproxyd-lang';
	const lang = localStorage.getItem(LANG_KEY) ||
		((navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en');
	const ZH = {
		'Loading…': '加载中…', 'Tokens': '令牌', 'Cache': '缓存', 'Statistics': '统计',
		'Settings': '设置', 'Log out': '退出登录', 'Admin login': '管理员登录',
		'Password': '密码', 'Log in': '登录', 'Checking…': '验证中…',
		'Wrong password.': '密码错误。', 'The admin panel is off': '管理面板未启用',
		'No admin password is set, so the admin API refuses every request. To turn the panel on:':
			'尚未设置管理员密码，管理 API 拒绝所有请求。启用面板：',
		'Refresh': '刷新', 'Export token.json': '导出 token.json', 'Add tokens': '添加令牌',
		'Reload the list': '重新加载列表',
		'Download the pool as token.json (holds the full tokens)': '将令牌池下载为 token.json（包含完整令牌）',
		'Type': '类型', 'Status': '状态', 'Tag': '标签', 'Search': '搜索',
		'All types': '全部类型', 'All statuses': '全部状态', 'All tags': '全部标签',
		'Active': '正常', 'Cooling': '冷却中', 'Expired': '失效', 'Disabled': '已停用',
		'Fingerprint, note or tag': '指纹、备注或标签',
		'Enable': '启用', 'Disable': '停用', 'Delete': '删除', 'Clear selection': '取消选择',
		'Select all shown': '全选', 'Token': '令牌', 'Remaining': '剩余', 'Heavy': 'Heavy 剩余',
		'Cooldown until': '冷却至', 'Failures': '失败', 'Tags': '标签', 'Note': '备注',
		'Created': '创建', 'Last used': '最近使用', 'Actions': '操作',
		'Media cache': '媒体缓存', 'Images': '图片', 'Videos': '视频',
		'Clear image cache': '清空图片缓存', 'Clear video cache': '清空视频缓存',
		'Tokens by state': '令牌状态', 'Errors by status': '按状态码的错误',
		'Requests per model': '各模型请求数', 'Token type': '令牌类型',
		'Normal tokens serve every model but grok-4-heavy.': 'Normal 令牌可用于除 grok-4-heavy 外的所有模型。',
		'Super tokens serve grok-4-heavy (their own heavy quota) and back up the normal pool.':
			'Super 令牌可用于 grok-4-heavy（独立的 heavy 配额），也为普通池兜底。',
		'One token per line, or comma separated (the sso cookie values of grok.com accounts)':
			'一行一个或逗号分隔（grok.com 账号的 sso Cookie 值）',
		'(optional, comma separated)': '（可选，逗号分隔）',
		'(comma separated, at most 8)': '（逗号分隔，最多 8 个）',
		'e.g. pool-a, bought-2026-11': '例如 pool-a, bought-2026-11',
		'Cancel': '取消', 'Add': '添加', 'Adding…': '添加中…', 'Add more': '继续添加',
		'Edit token': '编辑令牌', 'Enabled (used for requests)': '启用（用于请求）',
		'Save': '保存', 'Saved.': '已保存。', 'Are you sure?': '确定吗？', 'OK': '确定',
		'Token test': '令牌测试', 'Close': '关闭', 'Test': '测试', 'Edit': '编辑',
		'Testing…': '测试中…', 'Ask grok.com for this token\'s quota': '向 grok.com 查询此令牌的配额',
		'unknown': '未知', 'never': '从未', 'busy': '使用中',
		'tokens': '个令牌', 'active': '正常', 'cooling': '冷却中', 'expired': '失效', 'disabled': '已停用',
		'No tokens yet. Use "Add tokens" to paste the sso cookies of your grok.com accounts.':
			'还没有令牌。点击“添加令牌”，粘贴 grok.com 账号的 sso Cookie。',
		'No token matches these filters.': '没有符合筛选条件的令牌。',
		'{n} selected': '已选 {n} 个',
		'{a} added': '添加 {a} 个', ', {d} already there, {i} not valid.': '，{d} 个已存在，{i} 个无效。',
		'Already in the pool: ': '已在池中：',
		'Added {what} token(s).': '已添加 {what} 令牌。', 'no': '0 个', ' and ': '、',
		'Enabled {n} tokens.': '已启用 {n} 个令牌。', 'Disabled {n} tokens.': '已停用 {n} 个令牌。',
		'Delete tokens': '删除令牌',
		'Delete {what} from the pool? This cannot be undone (export token.json first to keep a copy).':
			'从池中删除 {what}？此操作无法撤销（可先导出 token.json 备份）。',
		'token {fp}': '令牌 {fp}', '{n} tokens': '{n} 个令牌',
		'Deleted {n} token(s).': '已删除 {n} 个令牌。',
		'Result': '结果', 'Message': '信息', 'grok.com status': 'grok.com 状态码',
		'Remaining queries': '剩余次数', 'Heavy remaining': 'Heavy 剩余次数', 'Resets in': '重置于',
		'Token test · {name}': '令牌测试 · {name}',
		'valid': '有效', 'limited': '限流', 'blocked': '被拦截', 'error': '错误',
		'Download': '下载',
		'The file holds every token in full: anyone who has it can use the accounts. Keep it safe.':
			'该文件包含完整令牌：拿到它的人都能使用这些账号。请妥善保管。',
		'{n} file(s)': '{n} 个文件', ' · clearing…': ' · 清理中…', 'limit {size}': '上限 {size}',
		'no limit': '无上限', 'Clear': '清空',
		'Clear the {kind} cache': '清空{kind}缓存', 'image': '图片', 'video': '视频',
		'Delete every cached {kind}? Links already handed to clients stop working.':
			'删除所有缓存的{kind}？已发给客户端的链接将失效。',
		'The janitor is still clearing the {kind} cache.': '清理进程仍在清空{kind}缓存。',
		'The {kind} cache is empty.': '{kind}缓存已清空。',
		'Uptime': '运行时间', 'since {t}': '自 {t}', 'Requests': '请求',
		'{n} in progress': '{n} 个进行中', 'Chat completions': '对话请求',
		'Client errors (4xx)': '客户端错误 (4xx)', 'Server errors (5xx)': '服务器错误 (5xx)',
		'Upstream failures': '上游失败', 'Tokens in use now': '正在使用的令牌',
		'{n} in the pool': '池中 {n} 个', 'Workers': '工作进程',
		'{r} reloads · {s} respawns': '重载 {r} 次 · 重启 {s} 次',
		'Quota unknown': '配额未知', 'Quota used up': '配额用尽',
		'Known remaining queries': '已知剩余次数', 'Known heavy remaining': '已知 heavy 剩余',
		'Answers': '响应数', 'No errors since the start.': '启动以来没有错误。',
		'Model': '模型', 'Errors': '错误', 'No model has been asked for yet.': '还没有模型被调用。',
		'updated {t}': '更新于 {t}', '(empty)': '（空）', 'Name': '名称', 'Upstream': '上游',
		'Mode': '模式', 'Pool': '池', 'Cost': '消耗', 'Video': '视频', 'yes': '是',
		'Cannot reach the admin API: ': '无法连接管理 API：',
		'in {v} {u}': '{v} {u}后', '{v} {u} ago': '{v} {u}前',
		's': '秒', 'min': '分钟', 'h': '小时', 'd': '天',
		'reload': '重载生效', 'restart': '重启生效',
		'Read-only. Change conf/config.yaml (or /etc/webproxyd/config.yaml) and reload: webproxyd -s reload, or systemctl reload webproxyd. Keys marked restart need a restart.':
			'只读。修改 conf/config.yaml（或 /etc/webproxyd/config.yaml）后重载：webproxyd -s reload 或 systemctl reload webproxyd。标为“重启生效”的项需要重启。',
	};
	const ZH_HTML = {
		'login-hint': '密码：config.yaml 中 <code>server.admin_password</code> 保存的是它的 argon2id 哈希。',
		'nopass-1': '为你想用的密码生成哈希：',
		'nopass-2': '把输出的 <code>$argon2id$…</code> 这一行写入 <code>config.yaml</code>：',
		'nopass-3': '重载：<code>webproxyd -s reload</code>（或 <code>systemctl reload webproxyd</code>），然后重新打开本页。',
		'cache-hint': '生成的图片和视频保存在 <code>data/temp/</code> 下；超过上限时清理进程会删除最旧的文件。',
		'stats-hint': '自守护进程启动以来的数据。同样的数字见 <code>GET /metrics</code>（Prometheus 文本格式）。',
		'add-hint': '重复的和不能作为 Cookie 值的内容会被报告，不会添加。要在一次粘贴中混合类型，在条目前加 <code>ssoSuper:</code> 或 <code>ssoNormal:</code>。',
	};

	function t(s, vars = {}) {
		let out = lang === 'zh' && ZH[s] !== undefined ? ZH[s] : s;
		for (const [k, v] of Object.entries(vars)) out = out.split(`{${k}}`).join(String(v));
		return out;
	}

	// Put the page's static text into Chinese (English is what it holds).
	function translatePage() {
		document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
		$('#lang').textContent = lang === 'zh' ? 'English' : '中文';
		if (lang !== 'zh') return;
		document.title = 'webproxyd · Grok 令牌';
		for (const e of $$('[data-i18n-html]')) {
			const h = ZH_HTML[e.dataset.i18nHtml];
			if (h) e.innerHTML = h; // our own constant markup
		}
		const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
		for (let n = walk.nextNode(); n; n = walk.nextNode()) {
			if (n.parentElement.closest('code, pre, script, style')) continue;
			const k = n.nodeValue.trim();
			if (k && ZH[k] !== undefined) n.nodeValue = n.nodeValue.replace(k, ZH[k]);
		}
		for (const a of ['placeholder', 'title', 'aria-label'])
			for (const e of $$(`[${a}]`)) {
				const k = e.getAttribute(a);
				if (ZH[k] !== undefined) e.setAttribute(a, ZH[k]);
			}
	}

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
				return t(d >= 0 ? 'in {v} {u}' : '{v} {u} ago', { v, u: t(name) });
			}
		}
		return fmtTime(ms);
	}

	function fmtDur(s) {
		const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
			m = Math.floor(s % 3600 / 60);
		if (d) return `${d} ${t('d')} ${h} ${t('h')}`;
		if (h) return `${h} ${t('h')} ${m} ${t('min')}`;
		if (m) return `${m} ${t('min')}`;
		return `${s} ${t('s')}`;
	}

	function quota(n) {
		return n < 0 ? t('unknown') : fmtNum(n);
	}

	function toast(msg, kind = 'info', ms = 4000) {
		const box = el('div', { class: `toast ${kind}`, text: msg });
		$('#toasts').append(box);
		setTimeout(() => box.classList.add('gone'), ms);
		setTimeout(() => box.remove(), ms + 400);
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
			$('#booting').textContent = t('Cannot reach the admin API: ') + e.message;
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
		btn.textContent = t('Checking…');
		try {
			await api('POST', '/api/login', { password: $('#login-password').value });
			$('#login-password').value = '';
			if (!location.hash) location.hash = '#tokens';
			route();
		} catch (e) {
			err.textContent = e.status === 401 ? t('Wrong password.') : e.message;
			err.hidden = false;
			$('#login-password').select();
		} finally {
			btn.disabled = false;
			btn.textContent = t('Log in');
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
			type: 'button', onclick: onClick }, el('b', { text: fmtNum(n) }), ` ${t(label)}`);
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
		sel.replaceChildren(el('option', { value: '', text: t('All tags') }),
			...tags.map((g) => el('option', { value: g, text: g })));
		sel.value = tags.includes(cur) ? cur : '';
	}

	function actionButtons(tk) {
		const disabled = tk.status === 'disabled' || tk.status === 'expired';
		return el('div', { class: 'row-actions' },
			el('button', { class: 'btn small', type: 'button', title: t('Ask grok.com for this token\'s quota'),
				dataset: { act: 'test', id: tk.id } }, t('Test')),
			el('button', { class: 'btn small', type: 'button', dataset: { act: 'edit', id: tk.id } }, t('Edit')),
			el('button', { class: 'btn small', type: 'button', dataset: { act: disabled ? 'enable' : 'disable', id: tk.id } },
				t(disabled ? 'Enable' : 'Disable')),
			el('button', { class: 'btn small danger', type: 'button', dataset: { act: 'delete', id: tk.id } }, t('Delete')));
	}

	function tokenRow(tk) {
		const td = (label, cls, ...kids) => el('td', { class: cls, 'data-label': label }, ...kids);
		const fail = tk.failedCount > 0
			? el('span', { class: 'fail', title: `${tk.lastFailureReason || ''}\n${fmtTime(tk.lastFailureTime)}` },
				el('b', { text: tk.failedCount }),
				tk.lastFailureReason ? el('small', { text: ` ${tk.lastFailureReason}` }) : null)
			: el('span', { class: 'muted', text: '0' });
		return el('tr', { dataset: { id: tk.id }, class: state.selected.has(tk.id) ? 'sel' : '' },
			el('td', { class: 'c-sel' }, el('input', { type: 'checkbox', 'aria-label': tk.fingerprint,
				checked: state.selected.has(tk.id), dataset: { sel: tk.id } })),
			td(t('Token'), 'c-tok', el('code', { class: 'fp', text: tk.fingerprint }), el('small', { class: 'muted id', text: ` #${tk.id}` })),
			td(t('Type'), '', el('span', { class: `type ${tk.type === 'ssoSuper' ? 't-super' : 't-normal'}`, text: TYPE_LABEL[tk.type] || tk.type })),
			td(t('Status'), '', el('span', { class: `badge s-${tk.status}`, text: t(tk.status) }),
				tk.inflight > 0 ? el('small', { class: 'muted', text: ` ${tk.inflight} ${t('busy')}` }) : null),
			td(t('Remaining'), 'num', quota(tk.remainingQueries)),
			td(t('Heavy'), 'num', tk.type === 'ssoSuper' ? quota(tk.heavyremainingQueries) : el('span', { class: 'muted', text: '–' })),
			td(t('Cooldown until'), '', tk.cooldownUntil ? el('span', { title: fmtTime(tk.cooldownUntil), text: fmtRel(tk.cooldownUntil) }) : el('span', { class: 'muted', text: '–' })),
			td(t('Failures'), 'num', fail),
			td(t('Tags'), 'c-tags', tk.tags.length ? tk.tags.map((g) => el('span', { class: 'tag', text: g })) : el('span', { class: 'muted', text: '–' })),
			td(t('Note'), 'c-note', tk.note ? el('span', { text: tk.note, title: tk.note }) : el('span', { class: 'muted', text: '–' })),
			td(t('Created'), '', el('span', { title: fmtTime(tk.createdTime), text: fmtRel(tk.createdTime) })),
			td(t('Last used'), '', tk.lastUsedTime ? el('span', { title: fmtTime(tk.lastUsedTime), text: fmtRel(tk.lastUsedTime) }) : el('span', { class: 'muted', text: t('never') })),
			el('td', { class: 'c-act' }, actionButtons(tk)));
	}

	function renderTokens() {
		renderSummary();
		renderTagFilter();
		const list = sorted(filtered());
		$('#tok-body').replaceChildren(...list.map(tokenRow));
		const empty = $('#tok-empty');
		empty.hidden = list.length > 0;
		empty.textContent = state.tokens.length === 0
			? t('No tokens yet. Use "Add tokens" to paste the sso cookies of your grok.com accounts.')
			: t('No token matches these filters.');
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
		$('#bulk-count').textContent = t('{n} selected', { n });
	}

	function byId(id) { return state.tokens.find((t) => t.id === id); }

	// ---- dialogs ---------------------------------------------------------------------

	function confirmBox(title, text, okLabel = 'Delete') {
		const d = $('#dlg-confirm');
		$('#confirm-title').textContent = title;
		$('#confirm-text').textContent = text;
		$('#confirm-ok').textContent = t(okLabel);
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
		$('#add-submit').textContent = t('Add');
		$('#dlg-add').showModal();
		$('#add-tokens').focus();
	}

	function typeHint() {
		const type = $('#add-form').elements.type.value;
		$('#add-type-hint').textContent = type === 'ssoSuper'
			? t('Super tokens serve grok-4-heavy (their own heavy quota) and back up the normal pool.')
			: t('Normal tokens serve every model but grok-4-heavy.');
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
		btn.textContent = t('Adding…');
		try {
			const { data } = await api('POST', '/api/projects/grok/tokens', body);
			const box = $('#add-result');
			const parts = [el('p', {}, el('b', { text: t('{a} added', { a: data.added.length }) }),
				t(', {d} already there, {i} not valid.', { d: data.duplicates.length, i: data.invalid.length }))];
			if (data.duplicates.length)
				parts.push(el('p', { class: 'small' }, t('Already in the pool: '),
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
					[label, state.tokens.filter((x) => added.has(x.id) && x.type === k).length])
					.filter(([, n]) => n > 0).map(([label, n]) => `${n} ${label}`);
				toast(t('Added {what} token(s).', { what: per.join(t(' and ')) || t('no') })
					.replace('token(s)', data.added.length === 1 ? 'token' : 'tokens'), 'ok');
			} else {
				$('#add-tokens').value = '';
				btn.textContent = t('Add more');
			}
		} catch (e) {
			failed(e);
			btn.textContent = t('Add');
		} finally {
			btn.disabled = false;
		}
	}

	let editing = null;

	function openEdit(id) {
		const tk = byId(id);
		if (!tk) return;
		editing = id;
		$('#edit-which').textContent = `${tk.fingerprint} · ${TYPE_LABEL[tk.type]} · #${tk.id}`;
		$('#edit-tags').value = tk.tags.join(', ');
		$('#edit-note').value = tk.note;
		$('#edit-enabled').checked = tk.status !== 'disabled' && tk.status !== 'expired';
		$('#edit-error').hidden = true;
		$('#dlg-edit').showModal();
		$('#edit-tags').focus();
	}

	async function onEdit(ev) {
		ev.preventDefault();
		const tk = byId(editing);
		if (!tk) { $('#dlg-edit').close(); return; }
		const body = { tags: splitList($('#edit-tags').value), note: $('#edit-note').value };
		const wasOn = tk.status !== 'disabled' && tk.status !== 'expired';
		const on = $('#edit-enabled').checked;
		if (on !== wasOn) body.status = on ? 'active' : 'disabled';
		try {
			await api('PATCH', `/api/projects/grok/tokens/${encodeURIComponent(editing)}`, body);
			$('#dlg-edit').close();
			toast(t('Saved.'), 'ok');
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
		if (ids.length > 1)
			toast(t(status === 'active' ? 'Enabled {n} tokens.' : 'Disabled {n} tokens.', { n: ok }), 'ok');
		await loadTokens().catch(failed);
	}

	async function remove(ids) {
		const what = ids.length === 1 ? t('token {fp}', { fp: byId(ids[0])?.fingerprint || ids[0] })
			: t('{n} tokens', { n: ids.length });
		if (!await confirmBox(t('Delete tokens'), t('Delete {what} from the pool? This cannot be undone (export token.json first to keep a copy).', { what }))) return;
		try {
			const { data } = await api('DELETE', '/api/projects/grok/tokens', { ids });
			for (const id of data.deleted) state.selected.delete(id);
			toast(t('Deleted {n} token(s).', { n: data.deleted.length })
				.replace('token(s)', data.deleted.length === 1 ? 'token' : 'tokens'), 'ok');
		} catch (e) { failed(e); }
		await loadTokens().catch(failed);
	}

	async function test(id, btn) {
		btn.disabled = true;
		const old = btn.textContent;
		btn.textContent = t('Testing…');
		try {
			const { data } = await api('POST', `/api/projects/grok/tokens/${encodeURIComponent(id)}/test`);
			const rows = [['Result', el('span', { class: `badge r-${data.result}`, text: t(data.result) })],
				['Message', data.message]];
			if (data.httpStatus) rows.push(['grok.com status', String(data.httpStatus)]);
			if ('remainingQueries' in data) rows.push(['Remaining queries', quota(data.remainingQueries)]);
			if ('heavyremainingQueries' in data) rows.push(['Heavy remaining', quota(data.heavyremainingQueries)]);
			if ('waitSeconds' in data) rows.push(['Resets in', fmtDur(data.waitSeconds)]);
			const tk = byId(id);
			$('#test-title').textContent = t('Token test · {name}', { name: tk ? tk.fingerprint : id });
			$('#test-body').replaceChildren(el('table', { class: 'plain' },
				...rows.map(([k, v]) => el('tr', {}, el('th', { text: t(k) }), el('td', {}, v)))));
			$('#dlg-test').showModal();
			await loadTokens().catch(failed);
		} catch (e) { failed(e); }
		finally {
			btn.disabled = false;
			btn.textContent = old;
		}
	}

	async function exportPool() {
		if (!await confirmBox(t('Export token.json'),
			t('The file holds every token in full: anyone who has it can use the accounts. Keep it safe.'), 'Download'))
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
		f('files').textContent = t('{n} file(s)', { n: fmtNum(c.files) })
			.replace('file(s)', c.files === 1 ? 'file' : 'files') + (c.clearing ? t(' · clearing…') : '');
		f('limit').textContent = c.maxBytes > 0 ? t('limit {size}', { size: fmtBytes(c.maxBytes) }) : t('no limit');
		f('meter').style.width = c.maxBytes > 0 ? `${Math.min(100, 100 * c.bytes / c.maxBytes)}%` : '0%';
	}

	async function loadCache() {
		const { data } = await api('GET', '/api/cache');
		renderCacheCard('image', data.image);
		renderCacheCard('video', data.video);
	}

	async function clearCache(kind, btn) {
		if (!await confirmBox(t('Clear the {kind} cache', { kind: t(kind) }),
			t('Delete every cached {kind}? Links already handed to clients stop working.', { kind: t(kind) }), 'Clear'))
			return;
		btn.disabled = true;
		try {
			const { status, data } = await api('DELETE', `/api/cache/${kind}`);
			renderCacheCard(kind, data.cache);
			toast(t(status === 202 ? 'The janitor is still clearing the {kind} cache.' : 'The {kind} cache is empty.',
				{ kind: t(kind) }), 'ok');
		} catch (e) { failed(e); }
		finally { btn.disabled = false; }
	}

	// ---- statistics ----------------------------------------------------------------

	function kv(rows, head) {
		return [head ? el('tr', {}, ...head.map((h, i) => el('th', { class: i ? 'num' : '', text: t(h) }))) : null,
			...rows.map((r) => el('tr', {}, ...r.map((c, i) => el(i ? 'td' : 'th', { class: i ? 'num' : '' }, i ? c : t(c)))))];
	}

	async function loadStats() {
		const { data: s } = await api('GET', '/api/stats');
		const card = (label, value, sub, cls) => el('div', { class: `card stat ${cls || ''}` },
			el('div', { class: 'muted small', text: t(label) }), el('div', { class: 'big', text: value }),
			sub ? el('div', { class: 'muted small', text: sub }) : null);
		$('#stats-cards').replaceChildren(
			card('Uptime', fmtDur(s.uptimeSeconds), t('since {t}', { t: fmtTime(s.startedTime) })),
			card('Requests', fmtNum(s.requests.total), t('{n} in progress', { n: fmtNum(s.requests.active) })),
			card('Chat completions', fmtNum(s.requests.chat)),
			card('Client errors (4xx)', fmtNum(s.requests.errors4xx), null, s.requests.errors4xx ? 'warn' : ''),
			card('Server errors (5xx)', fmtNum(s.requests.errors5xx), null, s.requests.errors5xx ? 'bad' : ''),
			card('Upstream failures', fmtNum(s.requests.upstreamErrors), null, s.requests.upstreamErrors ? 'bad' : ''),
			card('Tokens in use now', fmtNum(s.tokens.inflight), t('{n} in the pool', { n: fmtNum(s.tokens.total) })),
			card('Workers', fmtNum(s.workers), t('{r} reloads · {s} respawns', { r: s.reloads, s: s.respawns })));
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
			: [el('tr', {}, el('td', { class: 'muted', text: t('No errors since the start.') }))]));
		const models = s.models.slice().sort((a, b) => b.requests - a.requests);
		$('#stats-models').replaceChildren(...(models.length
			? kv(models.map((m) => [m.model, fmtNum(m.requests), fmtNum(m.errors)]), ['Model', 'Requests', 'Errors'])
			: [el('tr', {}, el('td', { class: 'muted', text: t('No model has been asked for yet.') }))]));
		$('#stats-updated').textContent = t('updated {t}', { t: new Date().toLocaleTimeString() });
	}

	// ---- settings -----------------------------------------------------------------

	const EMPTY = t('(empty)');

	function settingValue(v) {
		if (Array.isArray(v)) {
			if (v.length && typeof v[0] === 'object') return null; // models: own table
			return v.length ? v.join(', ') : EMPTY;
		}
		if (v === '') return EMPTY;
		return String(v);
	}

	async function loadSettings() {
		const { data } = await api('GET', '/api/settings');
		$('#settings-hint').textContent = t(data.hint);
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
					el('td', { class: 'val' }, el('span', { class: shown === EMPTY ? 'muted' : '', text: shown })),
					el('td', { class: 'apply' }, el('span', { class: `badge a-${d.apply}`, text: t(d.apply || '') })),
					el('td', { class: 'doc muted', text: d.doc || '' })));
			}
			out.push(el('div', { class: 'card' }, el('h2', {}, el('code', { text: title })),
				el('div', { class: 'table-wrap' }, el('table', { class: 'plain settings' }, ...rows))));
			if (models) {
				out.push(el('div', { class: 'card' }, el('h2', {}, el('code', { text: `${prefix}.models` })),
					el('div', { class: 'table-wrap' }, el('table', { class: 'plain' },
						el('tr', {}, ...['Name', 'Upstream', 'Mode', 'Pool', 'Cost', 'Video'].map((h) => el('th', { text: t(h) }))),
						...models.map((m) => el('tr', {}, el('td', {}, el('code', { text: m.name })),
							el('td', { text: m.upstream }), el('td', { text: m.mode }),
							el('td', { text: m.pool }), el('td', { text: m.cost }),
							el('td', { text: m.video ? t('yes') : '' })))))));
			}
		}
		$('#settings-body').replaceChildren(...out);
	}

	// ---- wiring ---------------------------------------------------------------------

	function wire() {
		$('#lang').addEventListener('click', () => {
			localStorage.setItem(LANG_KEY, lang === 'zh' ? 'en' : 'zh');
			location.reload();
		});
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
		translatePage();
		wire();
		boot();
	});
})();
