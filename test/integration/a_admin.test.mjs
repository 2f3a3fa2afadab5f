// The admin API under /api/ and the panel's files (DESIGN.md §7, issue 5):
// the password and sessions, every route's gate (401 without a session,
// 415 without JSON, 400 naming the field), the token routes and their
// effect on other workers and on token.json, the token test against the
// fake grok.com, cache, statistics, /metrics, settings with secrets
// masked, and the login rate limit.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { bearer, chat, request, run, startDaemon, startWithFake, tokenFile,
	tokenOf, until, waitTokens } from './lib.mjs';

const PASSWORD = 'admin panel test password';
const KEY = 'sk-admin-test-key-0123456789';
let HASH;

function hash() {
	if (!HASH) {
		const r = run(['--hash-password'], `${PASSWORD}\n`);
		assert.equal(r.status, 0, r.stderr);
		HASH = r.stdout.trim();
		assert.match(HASH, /^\$argon2id\$/);
	}
	return HASH;
}

const JSONH = { 'content-type': 'application/json' };

async function login(d, password = PASSWORD, headers = {}) {
	return request(d.url('/api/login'), { method: 'POST',
		headers: { ...JSONH, ...headers }, body: JSON.stringify({ password }) });
}

// A logged-in session: { cookie, get(path), send(method, path, body) }.
async function session(d) {
	const r = await login(d);
	assert.equal(r.status, 200, r.body);
	const sc = [r.headers['set-cookie']].flat()[0];
	const cookie = sc.split(';')[0];
	const get = (p, h = {}) => request(d.url(p), { headers: { cookie, ...h } });
	const send = (method, p, body, h = JSONH) => {
		const text = body === undefined ? undefined
			: typeof body === 'string' ? body : JSON.stringify(body);
		// node sends a DELETE body unframed unless told its length.
		const len = text === undefined ? {} : { 'content-length': Buffer.byteLength(text) };
		return request(d.url(p), { method, headers: { cookie, ...len, ...h }, body: text });
	};
	return { cookie, get, send };
}

function assertError(r, status, param) {
	assert.equal(r.status, status, r.body);
	assert.ok(r.json && r.json.error, `no error envelope: ${r.body}`);
	assert.equal(typeof r.json.error.message, 'string');
	if (param !== undefined) assert.equal(r.json.error.param, param, r.body);
}

// Every route of the API with a plausible request.
const ROUTES = [
	['POST', '/api/logout'],
	['GET', '/api/session'],
	['GET', '/api/projects/grok/tokens'],
	['POST', '/api/projects/grok/tokens', { type: 'ssoNormal', tokens: 'x' }],
	['DELETE', '/api/projects/grok/tokens', { ids: ['0.1'] }],
	['GET', '/api/projects/grok/tokens/0.1'],
	['PATCH', '/api/projects/grok/tokens/0.1', { note: 'x' }],
	['POST', '/api/projects/grok/tokens/0.1/test'],
	['GET', '/api/projects/grok/tokens/export'],
	['GET', '/api/cache'],
	['DELETE', '/api/cache/image'],
	['DELETE', '/api/cache/video'],
	['GET', '/api/stats'],
	['GET', '/api/settings'],
	['GET', '/api/nothing-here'],
];

describe('admin API', () => {
	let d, s, superId;
	before(async () => {
		d = await startWithFake({ workers: 2,
			server: { admin_password: hash(), api_keys: [KEY] },
			grok: { cf_clearance: 'cf-secret-clearance-value-1234' },
			tokens: tokenFile(['seed-normal-1']) });
		s = await session(d);
	});
	after(() => d.stop());

	test('the panel is served at /projects/grok without a session', async () => {
		for (const p of ['/projects/grok', '/projects/grok/', '/projects/grok/index.html']) {
			const r = await request(d.url(p));
			assert.equal(r.status, 200, p);
			assert.match(r.headers['content-type'], /^text\/html/);
			assert.match(r.body, /<title>webproxyd/);
			assert.match(r.headers['content-security-policy'], /script-src 'self'/);
			assert.equal(r.headers['x-frame-options'], 'DENY');
		}
		const js = await request(d.url('/projects/grok/app.js'));
		assert.equal(js.status, 200);
		assert.match(js.headers['content-type'], /javascript/);
		const css = await request(d.url('/projects/grok/style.css'));
		assert.match(css.headers['content-type'], /^text\/css/);
		const again = await request(d.url('/projects/grok/app.js'),
			{ headers: { 'if-none-match': js.headers.etag } });
		assert.equal(again.status, 304);
		assert.equal((await request(d.url('/projects/grok/nope.js'))).status, 404);
		assert.equal((await request(d.url('/projects/grok/app.js'), { method: 'HEAD' })).status, 200);
	});

	test('every route without a session is 401, with or without a stale cookie', async () => {
		for (const [method, p, body] of ROUTES) {
			for (const cookie of [undefined, 'webproxyd_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']) {
				const r = await request(d.url(p), { method,
					headers: { ...JSONH, ...(cookie ? { cookie } : {}) },
					body: body ? JSON.stringify(body) : undefined });
				assertError(r, 401);
				assert.equal(r.json.error.code, 'login_required', `${method} ${p}`);
			}
		}
	});

	test('a wrong password is 401 and sets no cookie', async () => {
		const r = await login(d, 'not it');
		assertError(r, 401, 'password');
		assert.equal(r.headers['set-cookie'], undefined);
	});

	test('login: malformed bodies name the field; no JSON type is 415', async () => {
		assertError(await request(d.url('/api/login'), { method: 'POST', headers: JSONH,
			body: '{"password": ' }), 400, 'body');
		assertError(await request(d.url('/api/login'), { method: 'POST', headers: JSONH,
			body: '{"password": 5}' }), 400, 'password');
		assertError(await request(d.url('/api/login'), { method: 'POST', headers: JSONH,
			body: '[]' }), 400, 'body');
		const r = await request(d.url('/api/login'), { method: 'POST',
			headers: { 'content-type': 'application/x-www-form-urlencoded' },
			body: `password=${encodeURIComponent(PASSWORD)}` });
		assertError(r, 415);
		assert.equal(r.headers['set-cookie'], undefined);
		assertError(await request(d.url('/api/login')), 405);
	});

	test('the session cookie: random, HttpOnly, SameSite=Strict, Secure behind HTTPS', async () => {
		const a = await login(d), b = await login(d, PASSWORD, { 'x-forwarded-proto': 'https' });
		const ca = [a.headers['set-cookie']].flat()[0], cb = [b.headers['set-cookie']].flat()[0];
		assert.match(ca, /^webproxyd_session=[A-Za-z0-9_-]{43}; Path=\/api; Max-Age=\d+; HttpOnly; SameSite=Strict$/);
		assert.doesNotMatch(ca, /Secure/);
		assert.match(cb, /; Secure$/);
		assert.notEqual(ca.split(';')[0], cb.split(';')[0]);
	});

	test('a session works on every worker, over many fresh connections', async () => {
		for (let i = 0; i < 30; i++) {
			const r = await s.get('/api/session');
			assert.equal(r.status, 200, r.body);
			assert.equal(r.json.ok, true);
		}
	});

	test('every write without a JSON content type is 415', async () => {
		for (const [method, p, body] of ROUTES.filter(([m]) => m !== 'GET')) {
			const r = await s.send(method, p, body === undefined ? undefined : JSON.stringify(body),
				{ 'content-type': 'text/plain' });
			assertError(r, 415);
			const none = await s.send(method, p, undefined, {});
			assertError(none, 415);
		}
	});

	test('the list shows fingerprints, never tokens', async () => {
		const r = await s.get('/api/projects/grok/tokens');
		assert.equal(r.status, 200);
		assert.equal(r.json.tokens.length, 1);
		const t = r.json.tokens[0];
		assert.deepEqual(Object.keys(t).sort(), ['cooldownUntil', 'createdTime', 'failedCount',
			'fingerprint', 'heavyremainingQueries', 'id', 'inflight', 'lastFailureReason',
			'lastFailureTime', 'lastUsedTime', 'note', 'remainingQueries', 'status', 'tags',
			'type'].sort());
		assert.match(t.id, /^\d+\.\d+$/);
		assert.match(t.fingerprint, /^tok:[0-9a-f]{8}$/);
		assert.equal(t.type, 'ssoNormal');
		assert.doesNotMatch(r.body, /seed-normal-1/);
	});

	test('add: a super token reaches every worker and token.json', async () => {
		const none = await request(d.url('/v1/models'), { headers: bearer(KEY) });
		assert.ok(!none.json.data.some((m) => m.id === 'grok-4-heavy'));
		const r = await s.send('POST', '/api/projects/grok/tokens',
			{ type: 'ssoSuper', tokens: 'api-super-1' });
		assert.equal(r.status, 200, r.body);
		assert.equal(r.json.added.length, 1);
		superId = r.json.added[0];
		// Fresh connections land on both workers: each must see it at once.
		for (let i = 0; i < 30; i++) {
			const m = await request(d.url('/v1/models'), { headers: bearer(KEY) });
			assert.ok(m.json.data.some((x) => x.id === 'grok-4-heavy'), `try ${i}`);
			const l = await s.get('/api/projects/grok/tokens?type=ssoSuper');
			assert.deepEqual(l.json.tokens.map((x) => x.id), r.json.added);
		}
		const f = await waitTokens(d, (j) => 'api-super-1' in j.ssoSuper);
		assert.equal(f.ssoSuper['api-super-1'].status, 'active');
	});

	test('add: one per line or comma separated; duplicates and junk reported, not added', async () => {
		const r = await s.send('POST', '/api/projects/grok/tokens', { type: 'ssoNormal',
			tokens: ' api-n-1 \r\napi-n-2,api-n-3,,\n\nsso=api-n-4\nseed-normal-1\napi-n-1\n' +
				'bad token\nbad;token\nssoSuper:api-s-2\n' + 'x'.repeat(600) });
		assert.equal(r.status, 200, r.body);
		assert.equal(r.json.added.length, 5);
		assert.equal(r.json.duplicates.length, 2);
		assert.ok(r.json.duplicates.every((f) => /^tok:[0-9a-f]{8}$/.test(f)));
		assert.equal(r.json.invalid.length, 3);
		for (const x of r.json.invalid) {
			assert.equal(typeof x.value, 'string');
			assert.ok(x.value.length <= 30);
			assert.equal(typeof x.reason, 'string');
		}
		const f = await waitTokens(d, (j) => 'api-n-4' in j.ssoNormal && 'api-s-2' in j.ssoSuper);
		for (const t of ['api-n-1', 'api-n-2', 'api-n-3', 'api-n-4']) assert.ok(t in f.ssoNormal, t);
		assert.ok(!('bad' in f.ssoNormal));
		// An array works too, and tags given apply to each.
		const a = await s.send('POST', '/api/projects/grok/tokens', { type: 'ssoNormal',
			tokens: ['api-arr-1', 'api-arr-2'], tags: ['batch-7'], note: 'from a script' });
		assert.equal(a.json.added.length, 2);
		const l = await s.get('/api/projects/grok/tokens?tag=batch-7');
		assert.equal(l.json.tokens.length, 2);
		assert.ok(l.json.tokens.every((t) => t.note === 'from a script'));
	});

	test('add: malformed bodies are 400 naming the field', async () => {
		const p = '/api/projects/grok/tokens';
		assertError(await s.send('POST', p, '{"type":'), 400, 'body');
		assertError(await s.send('POST', p, { tokens: 'x' }), 400, 'type');
		assertError(await s.send('POST', p, { type: 'sso', tokens: 'x' }), 400, 'type');
		assertError(await s.send('POST', p, { type: 'ssoNormal' }), 400, 'tokens');
		assertError(await s.send('POST', p, { type: 'ssoNormal', tokens: 5 }), 400, 'tokens');
		assertError(await s.send('POST', p, { type: 'ssoNormal', tokens: [1] }), 400, 'tokens');
		assertError(await s.send('POST', p, { type: 'ssoNormal', tokens: 'x', tags: 'a' }), 400, 'tags');
		assertError(await s.send('POST', p, { type: 'ssoNormal', tokens: 'x', note: 1 }), 400, 'note');
		assertError(await s.get(`${p}?type=bogus`), 400, 'type');
		assertError(await s.get(`${p}?status=bogus`), 400, 'status');
	});

	test('edit tags, note and status; other workers and token.json see it', async () => {
		const l = await s.get('/api/projects/grok/tokens?type=ssoSuper');
		const others = l.json.tokens.filter((x) => x.id !== superId);
		const p = `/api/projects/grok/tokens/${superId}`;
		let r = await s.send('PATCH', p, { tags: ['vip', ' heavy ', 'vip'], note: 'the heavy one' });
		assert.equal(r.status, 200, r.body);
		assert.deepEqual(r.json.token.tags, ['vip', 'heavy']);
		assert.equal(r.json.token.note, 'the heavy one');
		for (let i = 0; i < 20; i++) {
			const one = await s.get(p);
			assert.deepEqual(one.json.token.tags, ['vip', 'heavy']);
		}
		r = await s.send('PATCH', p, { status: 'disabled' });
		assert.equal(r.json.token.status, 'disabled');
		for (const o of others)
			await s.send('PATCH', `/api/projects/grok/tokens/${o.id}`, { status: 'disabled' });
		const f = await waitTokens(d, (j) => j.ssoSuper['api-super-1']?.status === 'disabled');
		assert.deepEqual(f.ssoSuper['api-super-1'].tags, ['vip', 'heavy']);
		assert.equal(f.ssoSuper['api-super-1'].note, 'the heavy one');
		// Disabled: the heavy model has no usable token on any worker.
		for (let i = 0; i < 10; i++) {
			const c = await chat(d, { model: 'grok-4-heavy', messages: [{ role: 'user', content: 'hi' }] },
				bearer(KEY));
			assert.ok(c.status >= 400, c.body);
		}
		r = await s.send('PATCH', p, { status: 'active' });
		assert.equal(r.json.token.status, 'active');
		for (const o of others)
			await s.send('PATCH', `/api/projects/grok/tokens/${o.id}`, { status: 'active' });
		await waitTokens(d, (j) => j.ssoSuper['api-super-1']?.status === 'active');
	});

	test('edit: malformed bodies are 400 naming the field; unknown ids 404', async () => {
		const l = await s.get('/api/projects/grok/tokens');
		const p = `/api/projects/grok/tokens/${l.json.tokens[0].id}`;
		assertError(await s.send('PATCH', p, '{'), 400, 'body');
		assertError(await s.send('PATCH', p, {}), 400, 'body');
		assertError(await s.send('PATCH', p, { tags: 'a,b' }), 400, 'tags');
		assertError(await s.send('PATCH', p, { tags: [5] }), 400, 'tags');
		assertError(await s.send('PATCH', p, { tags: ['x'.repeat(40)] }), 400, 'tags');
		assertError(await s.send('PATCH', p, { tags: ['a,b'] }), 400, 'tags');
		assertError(await s.send('PATCH', p, { tags: Array.from({ length: 9 }, (_, i) => `t${i}`) }), 400, 'tags');
		assertError(await s.send('PATCH', p, { note: 'x'.repeat(300) }), 400, 'note');
		assertError(await s.send('PATCH', p, { note: 7 }), 400, 'note');
		assertError(await s.send('PATCH', p, { status: 'expired' }), 400, 'status');
		assertError(await s.send('PATCH', p, { status: 'cooling' }), 400, 'status');
		assertError(await s.send('PATCH', p, { color: 'red' }), 400, 'color');
		assertError(await s.send('PATCH', '/api/projects/grok/tokens/999.1', { note: 'x' }), 404);
		assertError(await s.send('PATCH', '/api/projects/grok/tokens/abc', { note: 'x' }), 404);
		assertError(await s.send('PUT', p, { note: 'x' }), 405);
		// Bytes that are not UTF-8 in a quoted path still get an answer.
		assertError(await s.send('PATCH', '/api/projects/grok/tokens/%ff%fe', { note: 'x' }), 404);
		assertError(await s.get(`/api/${'a'.repeat(199)}%c3%a9`), 404);
		assertError(await s.get('/api/projects/grok/tokens/1.1/%e2%82'), 404);
	});

	test('delete one or many; gone everywhere and from token.json', async () => {
		const l = await s.get('/api/projects/grok/tokens?tag=batch-7');
		const ids = l.json.tokens.map((t) => t.id);
		assertError(await s.send('DELETE', '/api/projects/grok/tokens', { ids: 'x' }), 400, 'ids');
		assertError(await s.send('DELETE', '/api/projects/grok/tokens', { ids: ['1'] }), 400, 'ids');
		assertError(await s.send('DELETE', '/api/projects/grok/tokens', {}), 400, 'ids');
		const r = await s.send('DELETE', '/api/projects/grok/tokens', { ids: [...ids, '4000.9'] });
		assert.equal(r.status, 200, r.body);
		assert.deepEqual(r.json.deleted.sort(), ids.sort());
		assert.deepEqual(r.json.missing, ['4000.9']);
		for (let i = 0; i < 10; i++) {
			const again = await s.get('/api/projects/grok/tokens?tag=batch-7');
			assert.equal(again.json.tokens.length, 0);
		}
		await waitTokens(d, (j) => !('api-arr-1' in j.ssoNormal) && !('api-arr-2' in j.ssoNormal));
		// The id of a deleted token stays dead even when its row is reused.
		await s.send('POST', '/api/projects/grok/tokens', { type: 'ssoNormal', tokens: 'api-reuse' });
		assertError(await s.get(`/api/projects/grok/tokens/${ids[0]}`), 404);
	});

	test('test: asks grok.com for the quota, updates the token', async () => {
		const l = await s.get('/api/projects/grok/tokens');
		const sup = l.json.tokens.find((t) => t.type === 'ssoSuper' && t.status === 'active');
		const r = await s.send('POST', `/api/projects/grok/tokens/${sup.id}/test`);
		assert.equal(r.status, 200, r.body);
		assert.equal(r.json.result, 'valid');
		assert.equal(r.json.httpStatus, 200);
		assert.equal(typeof r.json.remainingQueries, 'number');
		assert.equal(typeof r.json.heavyremainingQueries, 'number');
		assert.equal(r.json.token.remainingQueries, r.json.remainingQueries);
		assert.equal(r.json.token.heavyremainingQueries, r.json.heavyremainingQueries);
		const calls = await d.fake.requests('?path=/rest/rate-limits');
		assert.ok(calls.length >= 2, JSON.stringify(calls).slice(0, 300));
	});

	test('test: a token grok.com refuses comes back expired', async () => {
		const add = await s.send('POST', '/api/projects/grok/tokens',
			{ type: 'ssoNormal', tokens: 'fault-401-admin' });
		const id = add.json.added[0];
		const r = await s.send('POST', `/api/projects/grok/tokens/${id}/test`);
		assert.equal(r.status, 200, r.body);
		assert.equal(r.json.result, 'expired');
		assert.equal(r.json.httpStatus, 401);
		assert.equal(r.json.token.failedCount, 1);
		assert.ok(r.json.token.lastFailureReason);
		assertError(await s.send('POST', '/api/projects/grok/tokens/999.3/test'), 404);
	});

	test('export: the pool as token.json, with the tokens', async () => {
		const r = await s.get('/api/projects/grok/tokens/export');
		assert.equal(r.status, 200);
		assert.match(r.headers['content-disposition'], /attachment; filename="token.json"/);
		assert.equal(r.headers['cache-control'], 'no-store');
		assert.ok('seed-normal-1' in r.json.ssoNormal);
		assert.ok('api-super-1' in r.json.ssoSuper);
		assert.deepEqual(r.json.ssoSuper['api-super-1'].tags, ['vip', 'heavy']);
	});

	test('cache: sizes, and a clear the janitor carries out', async () => {
		const r = await s.get('/api/cache');
		assert.equal(r.status, 200);
		for (const k of ['image', 'video']) {
			assert.equal(typeof r.json[k].bytes, 'number');
			assert.equal(typeof r.json[k].files, 'number');
			assert.equal(r.json[k].maxBytes, 500 * 1024 * 1024);
		}
		for (const k of ['image', 'video']) {
			const c = await s.send('DELETE', `/api/cache/${k}`);
			assert.ok(c.status === 200 || c.status === 202, c.body);
			assert.equal(c.json.kind, k);
			assert.equal(c.json.cleared, c.status === 200);
		}
	});

	test('stats and /metrics: requests, errors by status, tokens by state, per model', async () => {
		const c = await chat(d, { model: 'grok-4.1', messages: [{ role: 'user', content: 'hi' }] },
			bearer(KEY));
		assert.equal(c.status, 200, c.body);
		const st = await until(async () => {
			const x = (await s.get('/api/stats')).json;
			return x.models.some((m) => m.model === 'grok-4.1') ? x : null;
		}, 3000, 'grok-4.1 in stats');
		assert.ok(st.requests.total > 0);
		assert.ok(st.errorsByStatus['401'] > 0);
		assert.ok(st.errorsByStatus['400'] > 0);
		assert.ok(st.tokens.ssoSuper.total >= 1);
		assert.equal(st.tokens.total, st.tokens.ssoNormal.total + st.tokens.ssoSuper.total);
		assert.ok(st.tokens.ssoNormal.expired + st.tokens.ssoNormal.active >= 1);
		const m41 = st.models.find((m) => m.model === 'grok-4.1');
		assert.ok(m41.requests >= 1);
		assert.ok(st.models.find((m) => m.model === 'grok-4-heavy').errors >= 1);
		assert.equal(st.workers, 2);
		assertError(await request(d.url('/metrics')), 401);
		const m = await request(d.url('/metrics'), { headers: bearer(KEY) });
		assert.equal(m.status, 200);
		assert.match(m.body, /^webproxyd_requests_total \d+$/m);
		assert.match(m.body, /^webproxyd_tokens_by_status\{type="ssoSuper",status="active"\} [1-9]\d*$/m);
		assert.match(m.body, /^webproxyd_responses_by_status_total\{status="401"\} [1-9]\d*$/m);
		assert.match(m.body, /^webproxyd_model_requests_total\{model="grok-4.1"\} [1-9]\d*$/m);
		assert.match(m.body, /^webproxyd_cache_bytes\{kind="image"\} \d+$/m);
		assert.doesNotMatch(m.body, /seed-normal-1|api-super-1|sk-admin/);
	});

	test('settings: the effective config, secrets masked', async () => {
		const r = await s.get('/api/settings');
		assert.equal(r.status, 200);
		const c = r.json.config;
		assert.equal(c.server.workers, 2);
		assert.equal(c.projects.grok.enabled, true);
		assert.equal(c.grok.image_mode, 'url');
		assert.deepEqual(c.grok.retry_status_codes, [401, 429]);
		assert.ok(c.grok.models.some((m) => m.name === 'grok-4-heavy' && m.pool === 'super'));
		assert.equal(c.server.api_keys.length, 1);
		assert.match(c.server.api_keys[0], /^\*+/);
		assert.doesNotMatch(r.body, /sk-admin-test-key-0123456789|cf-secret-clearance|\$argon2id\$/);
		assert.match(c.server.admin_password, /^\*+/);
		assert.ok(r.json.keys.some((k) => k.key === 'server.listen' && k.apply === 'restart'));
		assert.ok(r.json.keys.some((k) => k.key === 'grok.proxy_url' && k.apply === 'reload'));
		assert.match(r.json.hint, /reload/);
	});

	test('logout ends the session on every worker', async () => {
		const other = await session(d);
		const r = await other.send('POST', '/api/logout');
		assert.equal(r.status, 200);
		assert.match([r.headers['set-cookie']].flat()[0], /Max-Age=0/);
		for (let i = 0; i < 10; i++)
			assertError(await other.get('/api/session'), 401);
		assert.equal((await s.get('/api/session')).status, 200, 'other sessions live on');
	});
});

describe('admin API without a password', () => {
	test('refuses everything and the panel says how to set one', async () => {
		const d = await startDaemon({ workers: 1 });
		try {
			const r = await login(d, 'anything');
			assertError(r, 403);
			assert.equal(r.json.error.code, 'admin_disabled');
			assert.match(r.json.error.message, /--hash-password/);
			assert.equal(r.headers['set-cookie'], undefined);
			assertError(await request(d.url('/api/projects/grok/tokens')), 403);
			const page = await request(d.url('/projects/grok'));
			assert.equal(page.status, 200);
			assert.match(page.body, /--hash-password/);
		} finally { await d.stop(); }
	});
});

describe('login rate limit', () => {
	test('wrong passwords from one address are blocked for a while, across workers', async () => {
		const d = await startDaemon({ workers: 2, server: { admin_password: hash() } });
		try {
			for (let i = 0; i < 5; i++)
				assertError(await login(d, `wrong ${i}`), 401);
			// Blocked now: even the right password is refused, without a cookie.
			for (let i = 0; i < 6; i++) {
				const r = await login(d);
				assertError(r, 429);
				assert.ok(Number(r.headers['retry-after']) > 0);
				assert.equal(r.headers['set-cookie'], undefined);
			}
		} finally { await d.stop(); }
	});

	test('behind a trusted proxy the limit is per forwarded client', async () => {
		const d = await startDaemon({ workers: 1, server: { admin_password: hash(),
			trusted_proxies: ['127.0.0.1/32'] } });
		try {
			const from = (ip) => ({ 'x-forwarded-for': `203.0.113.9, ${ip}` });
			for (let i = 0; i < 5; i++)
				assertError(await login(d, 'wrong', from('198.51.100.1')), 401);
			assertError(await login(d, PASSWORD, from('198.51.100.1')), 429);
			// Another client behind the same proxy still gets in.
			assert.equal((await login(d, PASSWORD, from('198.51.100.2'))).status, 200);
		} finally { await d.stop(); }
	});
});
