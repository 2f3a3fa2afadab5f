// Secrets (issue 7, DESIGN.md §8): a whole scenario with known SSO
// tokens, API keys, an admin password and session, a cf_clearance cookie
// and a proxy password, at log level debug; then every log line the
// daemon wrote, /metrics, and every response it gave (bodies and headers;
// but the token export, whose job is to hand tokens out, and the login's
// Set-Cookie) are searched for each secret, whole and in part. The files
// it creates: the data folder 0700, token.json 0600.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { BIN, request, run, sleep, startWithFake, streamChat, tmpdir, until }
	from './lib.mjs';

test('no secret in any log line, /metrics or response; data folder 0700, token.json 0600', async (t) => {
	const S = {
		normal: 'sso-normal-SECRET-7f3a9c1e5b2d4f6a8c0e',
		normal2: 'sso-normal-SECRET-2b4d6f8a0c1e3a5c7e9f',
		fault401: 'fault-401x1-SECRET-9e8d7c6b5a493827',
		fault429: 'fault-429-SECRET-1a2b3c4d5e6f7a8b9c0d',
		super: 'sso-super-SECRET-5c6d7e8f9a0b1c2d3e4f',
		added: 'sso-added-SECRET-0f1e2d3c4b5a69788796',
		key1: 'sk-apikey-SECRET-one-4f5e6d7c8b9a0f1e',
		key2: 'sk-apikey-SECRET-two-a1b2c3d4e5f60718',
		wrongKey: 'sk-wrongkey-SECRET-3c4d5e6f7a8b9c0d1e2f',
		password: 'admin-password-SECRET-6d7e8f9a0b1c',
		cf: 'cf-clearance-SECRET-8a9b0c1d2e3f4a5b6c7d',
		proxyPass: 'proxy-pass-SECRET-4b5c6d7e8f9a0b1c',
	};
	const hash = run(['--hash-password'], `${S.password}\n`).stdout.trim();
	assert.match(hash, /^\$argon2id\$/);
	S.hash = hash.split('$').at(-1); // the hash's own digest is a secret too
	const base = tmpdir();
	const data = path.join(base, 'state', 'webproxyd'); // the daemon creates it
	const old = process.umask(0o022);
	let d;
	const seen = []; // [what, text]
	try {
		d = await startWithFake({ dir: base, workers: 2,
			server: { data_dir: data, api_keys: [S.key1, S.key2], admin_password: hash,
				log_level: 'debug' },
			grok: (fake) => ({ cf_clearance: S.cf,
				proxy_url: `http://proxyuser:${S.proxyPass}@127.0.0.1:${fake.port}` }) },
		['-q', '1000000']);
		const call = async (what, p, { method = 'GET', headers = {}, body, keep = true } = {}) => {
			const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
			const r = await request(d.url(p), { method, body: text, headers: {
				...(text !== undefined ? { 'content-type': 'application/json',
					'content-length': Buffer.byteLength(text) } : {}), ...headers } });
			if (keep) seen.push([`${what} ${r.status}`, r.body + JSON.stringify(r.headers)]);
			return r;
		};
		const K1 = { authorization: `Bearer ${S.key1}` }, K2 = { authorization: `Bearer ${S.key2}` };
		// Admin: a wrong password, then a session.
		await call('login wrong', '/api/login', { method: 'POST', body: { password: 'nope' } });
		const lr = await call('login', '/api/login', { method: 'POST', body: { password: S.password },
			keep: false });
		assert.equal(lr.status, 200, lr.body);
		seen.push(['login body', lr.body]);
		const cookie = [lr.headers['set-cookie']].flat()[0].split(';')[0];
		S.session = cookie.split('=')[1];
		const C = { cookie };
		// Tokens enter through the API only, so the daemon writes token.json.
		for (const [type, toks] of [['ssoNormal', [S.normal, S.normal2, S.fault401, S.fault429]],
			['ssoSuper', [S.super]]]) {
			const r = await call('add', '/api/projects/grok/tokens', { method: 'POST', headers: C,
				body: { type, tokens: toks.join(',') } });
			assert.equal(r.status, 200, r.body);
		}
		// Chats with both keys, streamed and not, heavy on the super token,
		// an image, and the failures a client can cause.
		const msg = (c) => [{ role: 'user', content: c }];
		for (const [i, h] of [K1, K2, K1, K2, K1, K2].entries()) {
			await call('chat', '/v1/chat/completions', { method: 'POST', headers: h,
				body: { model: i % 3 ? 'grok-4.1' : 'grok-4-heavy', stream: i % 2 === 1, messages: msg('hi') } });
		}
		const s = await streamChat(d, { model: 'grok-4.1', stream: true, messages: msg('hi [tokens=20]') }, K1);
		seen.push(['stream', s.text]);
		await call('image', '/v1/chat/completions', { method: 'POST', headers: K1,
			body: { model: 'grok-4.1', messages: msg('Draw a boat [images=1]') } });
		await call('images api', '/v1/images/generations', { method: 'POST', headers: K2,
			body: { model: 'grok-4.1', prompt: 'a cat', n: 1 } });
		await call('wrong key', '/v1/models', { headers: { authorization: `Bearer ${S.wrongKey}` } });
		await call('wrong key chat', '/v1/chat/completions', { method: 'POST',
			headers: { authorization: `Bearer ${S.wrongKey}` }, body: { model: 'grok-4.1', messages: msg('x') } });
		await call('no key', '/v1/models');
		await call('bad json', '/v1/chat/completions', { method: 'POST', headers: K1, body: '{"model":' });
		await call('unknown model', '/v1/chat/completions', { method: 'POST', headers: K1,
			body: { model: 'nope', messages: msg('x') } });
		await call('models', '/v1/models', { headers: K2 });
		// Admin routes, but the export.
		const list = await call('list', '/api/projects/grok/tokens', { headers: C });
		const ids = list.json.tokens.map((x) => x.id);
		await call('get', `/api/projects/grok/tokens/${ids[0]}`, { headers: C });
		await call('patch', `/api/projects/grok/tokens/${ids[1]}`, { method: 'PATCH', headers: C,
			body: { note: 'a note', tags: ['x'] } });
		for (const id of ids)
			await call('test', `/api/projects/grok/tokens/${id}/test`, { method: 'POST', headers: C, body: {} });
		const exp = await call('export', '/api/projects/grok/tokens/export', { headers: C, keep: false });
		assert.equal(exp.status, 200);
		await call('add again', '/api/projects/grok/tokens', { method: 'POST', headers: C,
			body: { type: 'ssoNormal', tokens: `${S.added},${S.normal}` } });
		await call('bad add', '/api/projects/grok/tokens', { method: 'POST', headers: C,
			body: { type: 'ssoWeird', tokens: S.added } });
		await call('stats', '/api/stats', { headers: C });
		await call('settings', '/api/settings', { headers: C });
		await call('cache', '/api/cache', { headers: C });
		await call('session', '/api/session', { headers: C });
		await call('delete', '/api/projects/grok/tokens', { method: 'DELETE', headers: C,
			body: { ids: [ids.at(-1)] } });
		await call('metrics', '/metrics', { headers: K1 });
		d.signal('SIGHUP');
		d.signal('SIGUSR1');
		await sleep(500);
		await call('logout', '/api/logout', { method: 'POST', headers: C, body: {} });
		await call('dead session', '/api/stats', { headers: C });
		await call('metrics again', '/metrics', { headers: K2 });
		const tokPath = path.join(data, 'accounts/grok/token.json');
		await until(() => fs.existsSync(tokPath) && fs.readFileSync(tokPath, 'utf8').includes(S.added),
			5000, 'token.json written by the daemon');
		// The secrets were in use: grok.com saw the tokens and the
		// clearance cookie, through the proxy.
		const recs = await d.fake.requests('?path=/rest/app-chat/conversations/new');
		assert.ok(recs.some((x) => x.token === S.normal) && recs.some((x) => x.token === S.super));
		assert.ok(recs.every((x) => x.cookie.includes(`cf_clearance=${S.cf}`)));
		assert.ok(recs.every((x) => x.proxy?.user === 'proxyuser'), JSON.stringify(recs[0].proxy));
		const ex = await d.stop();
		assert.equal(ex.code, 0);
		// Every line the daemon logged, and each thing it answered.
		const hay = [['log', d.log], ...seen];
		const found = [];
		for (const [name, secret] of Object.entries(S)) {
			// Whole, and the 12 characters after its prefix (a cut print).
			const parts = [secret, secret.slice(Math.max(0, secret.indexOf('SECRET')), secret.indexOf('SECRET') + 18)];
			if (name === 'hash' || name === 'session') parts[1] = secret.slice(4, 20);
			for (const [what, text] of hay)
				for (const p of parts)
					if (text.includes(p)) {
						found.push(`${name} in ${what}: …${text.slice(Math.max(0, text.indexOf(p) - 80), text.indexOf(p) + p.length + 20)}…`);
						break;
					}
		}
		assert.ok(d.log.split('\n').length > 20, 'a scenario this size logs at debug');
		assert.deepEqual(found, [], 'secrets found');
		// The export does hand out the tokens (so the search above is not blind).
		assert.ok(exp.body.includes(S.normal));
		// Files: data folder 0700 (made by the daemon under umask 022), the
		// folders under it 0700, token.json 0600.
		for (const p of [data, path.join(data, 'accounts'), path.join(data, 'accounts/grok')])
			assert.equal((fs.statSync(p).mode & 0o777).toString(8), '700', p);
		assert.equal((fs.statSync(tokPath).mode & 0o777).toString(8), '600');
		for (const sub of ['data/temp/image', 'data/temp/video'].map((x) => path.join(data, x)))
			if (fs.existsSync(sub))
				assert.equal((fs.statSync(sub).mode & 0o077) & 0o022, 0, `${sub} writable by others`);
		t.diagnostic(`${Object.keys(S).length} secrets searched in ${d.log.split('\n').length} log lines ` +
			`and ${seen.length} responses; ${BIN}`);
	} finally {
		process.umask(old);
		if (d) await d.stop();
	}
});
