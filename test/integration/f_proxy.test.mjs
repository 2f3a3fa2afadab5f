// Proxies to grok.com (DESIGN.md §5.5, §5.6; reference §10): grok.proxy_url
// and grok.proxy_pool_url. The fake doubles as the HTTP proxy: it answers
// absolute-form targets ("POST http://host/rest/...") as if it were the
// target and records the proxy's Basic user, so a proxy URL
// "http://NAME:x@127.0.0.1:PORT" shows which proxy carried each request.
// grok.upstream_url points at a local port of the test's own that drops
// every connection and counts it: only a request through a proxy can
// succeed, and a direct one shows up in that count. The fake's
// /__fake/proxy route is the proxy-pool API.
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, test } from 'node:test';

import { chat, sleep, startWithFake, tokenFile, until } from './lib.mjs';
import { ANSWER, parseCompletion, parseStream, user } from './shapes.mjs';

// A port that drops every connection and counts them.
async function dropper() {
	const srv = net.createServer((s) => { srv.hits++; s.destroy(); });
	srv.hits = 0;
	await new Promise((ok) => srv.listen(0, '127.0.0.1', ok));
	srv.url = `http://127.0.0.1:${srv.address().port}`;
	srv.host = `127.0.0.1:${srv.address().port}`;
	srv.stop = () => new Promise((ok) => srv.close(ok));
	return srv;
}

const proxyOf = (fake, name) => `http://${name}:pw-${name}@127.0.0.1:${fake.port}`;

// Who carried each recorded request: [path, proxy user or 'direct', status].
async function carriers(fake, query = '') {
	return (await fake.requests(query)).map((x) =>
		[x.path, x.proxy ? x.proxy.user : 'direct', x.status]);
}

function assertProxied(rec, name, host) {
	assert.ok(rec.proxy, `${rec.path} came directly`);
	assert.equal(rec.proxy.absolute_form, true, 'an HTTP proxy request (absolute-form)');
	assert.equal(rec.proxy.host, host, 'for the configured upstream');
	assert.equal(rec.proxy.user, name);
	assert.equal(rec.proxy.authorization,
		`Basic ${Buffer.from(`${name}:pw-${name}`).toString('base64')}`);
	assert.equal(rec.target, `http://${host}${rec.path}`);
}

async function pool(d) { return d.fake.proxyState(); }

describe('proxies', { concurrency: true }, () => {
	test('grok.proxy_url carries the chat and the rate-limits call', async () => {
		const up = await dropper();
		const d = await startWithFake({ workers: 1, tokens: tokenFile(['tok-a']),
			grok: (fake) => ({ upstream_url: up.url, proxy_url: proxyOf(fake, 'static') }) });
		try {
			const s = parseStream(await chat(d, { model: 'grok-4.1', stream: true, ...user('hi') }),
				'grok-4.1');
			assert.equal(s.content, ANSWER);
			assert.equal(parseCompletion(await chat(d, { model: 'grok-4.1', ...user('hi') }),
				'grok-4.1').content, ANSWER);
			// One token, two answers within the minute: one quota refresh.
			await until(async () => (await d.fake.requests('?path=/rest/rate-limits')).length === 1,
				3000, 'the quota refresh');
			const recs = await d.fake.requests();
			assert.equal(recs.length, 3);
			for (const rec of recs) assertProxied(rec, 'static', up.host);
			assert.equal(recs[0].headers.origin, up.url, 'Origin is the upstream, not the proxy');
			assert.equal(up.hits, 0, 'nothing went to grok.com directly');
		} finally { await d.stop(); await up.stop(); }
	});

	test('a proxy that is down: a quick 502 whose message names the proxy', async () => {
		const up = await dropper();
		// A port nobody listens on: bind one, then let it go.
		const gone = await dropper();
		const port = gone.address().port;
		await gone.stop();
		const d = await startWithFake({ workers: 1, tokens: tokenFile(['tok-a']),
			grok: { upstream_url: up.url, proxy_url: `http://u:secret-pw@127.0.0.1:${port}` } });
		try {
			const t0 = Date.now();
			const r = await chat(d, { model: 'grok-4.1', ...user('hi') });
			assert.equal(r.status, 502, r.body);
			assert.ok(Date.now() - t0 < 3000);
			const msg = r.json.error.message;
			assert.match(msg, /proxy/i, 'the proxy failed, not grok.com: say so');
			assert.ok(msg.includes(`127.0.0.1:${port}`), `which proxy: ${msg}`);
			assert.ok(!r.body.includes('secret-pw'), 'without its password');
			assert.equal(up.hits, 0);
		} finally { await d.stop(); await up.stop(); }
	});

	test('grok.proxy_pool_url: one fetch for all workers, its proxy used for every call', async () => {
		const up = await dropper();
		const d = await startWithFake({ workers: 2, tokens: tokenFile(['tok-a', 'tok-b']),
			beforeStart: (fake) => fake.proxyPool({ urls: [proxyOf(fake, 'p1'), proxyOf(fake, 'p2')] }),
			grok: (fake) => ({ upstream_url: up.url, proxy_pool_url: `${fake.url}/__fake/proxy`,
				proxy_pool_interval: 60 }) });
		try {
			await until(async () => (await pool(d)).fetches >= 1, 3000, 'the first pool fetch');
			// Several requests on fresh connections reach both workers.
			const rs = await Promise.all([1, 2, 3, 4, 5, 6].map((i) =>
				chat(d, { model: 'grok-4.1', stream: i % 2 === 0, ...user('hi') })));
			for (const r of rs) assert.equal(r.status, 200, r.body);
			// A quota refresh per token used, not per answer.
			const used = new Set((await d.fake.requests('?path=/rest/app-chat/conversations/new'))
				.map((x) => x.token));
			await until(async () => (await d.fake.requests('?path=/rest/rate-limits')).length === used.size,
				3000, 'the quota refreshes');
			const recs = await d.fake.requests();
			assert.equal(recs.length, 6 + used.size);
			for (const rec of recs) assertProxied(rec, 'p1', up.host);
			assert.equal((await pool(d)).fetches, 1, 'the workers share one fetched proxy');
			assert.equal(up.hits, 0);
		} finally { await d.stop(); await up.stop(); }
	});

	test('a 403 fetches a fresh proxy from the pool at once; the retry goes through it', async () => {
		const up = await dropper();
		const d = await startWithFake({ workers: 1, tokens: tokenFile(['fault-403botx1-a']),
			beforeStart: (fake) => fake.proxyPool({ urls: [proxyOf(fake, 'p1'), proxyOf(fake, 'p2')] }),
			grok: (fake) => ({ upstream_url: up.url, proxy_pool_url: `${fake.url}/__fake/proxy`,
				proxy_pool_interval: 60 }) });
		try {
			await until(async () => (await pool(d)).fetches >= 1, 3000, 'the first pool fetch');
			// The worker merges forced refreshes that come within 2 s of
			// the last fetch (PROXY_MIN_GAP_MS): let that pass.
			await sleep(2100);
			const r = await chat(d, { model: 'grok-4.1', ...user('hi') });
			assert.equal(parseCompletion(r, 'grok-4.1').content, ANSWER);
			assert.deepEqual(await carriers(d.fake, '?path=/rest/app-chat/conversations/new'), [
				['/rest/app-chat/conversations/new', 'p1', 403],
				['/rest/app-chat/conversations/new', 'p2', 200]]);
			assert.equal((await pool(d)).fetches, 2, 'one refresh after the 403');
			assert.equal(up.hits, 0);
		} finally { await d.stop(); await up.stop(); }
	});

	test('a failing pool falls back to grok.proxy_url', async () => {
		const up = await dropper();
		const d = await startWithFake({ workers: 1, tokens: tokenFile(['tok-a']),
			beforeStart: (fake) => fake.proxyPool({ urls: [proxyOf(fake, 'p1')], status: 500 }),
			grok: (fake) => ({ upstream_url: up.url, proxy_pool_url: `${fake.url}/__fake/proxy`,
				proxy_url: proxyOf(fake, 'static') }) });
		try {
			await until(async () => (await pool(d)).fetches >= 1, 3000, 'a pool fetch');
			const r = await chat(d, { model: 'grok-4.1', ...user('hi') });
			assert.equal(parseCompletion(r, 'grok-4.1').content, ANSWER);
			const recs = await d.fake.requests('?path=/rest/app-chat/conversations/new');
			assert.equal(recs.length, 1);
			assertProxied(recs[0], 'static', up.host);
			await d.waitLog(/proxy pool .*500/, 3000);
			assert.equal(up.hits, 0);
		} finally { await d.stop(); await up.stop(); }
	});

	test('a pool answer of several proxies, one per line: the first is used', async () => {
		const up = await dropper();
		const d = await startWithFake({ workers: 1, tokens: tokenFile(['tok-a']),
			beforeStart: (fake) => fake.proxyPool({ urls: [proxyOf(fake, 'p1'), proxyOf(fake, 'p2'),
				proxyOf(fake, 'p3')], per_answer: 3 }),
			grok: (fake) => ({ upstream_url: up.url, proxy_pool_url: `${fake.url}/__fake/proxy` }) });
		try {
			await until(async () => (await pool(d)).fetches >= 1, 3000, 'the first pool fetch');
			const r = await chat(d, { model: 'grok-4.1', ...user('hi') });
			assert.equal(r.status, 200, r.body);
			const recs = await d.fake.requests('?path=/rest/app-chat/conversations/new');
			assertProxied(recs[0], 'p1', up.host);
		} finally { await d.stop(); await up.stop(); }
	});

	test('the pool\'s proxy carries even the first request after start', async () => {
		const up = await dropper();
		const d = await startWithFake({ workers: 1, tokens: tokenFile(['tok-a']),
			beforeStart: (fake) => fake.proxyPool({ urls: [proxyOf(fake, 'p1')] }),
			grok: (fake) => ({ upstream_url: up.url, proxy_pool_url: `${fake.url}/__fake/proxy` }) });
		try {
			// No waiting for the worker's first periodic refresh: the
			// reference fetches the pool on first use, and a request sent
			// without it would leave from this server's own address.
			const r = await chat(d, { model: 'grok-4.1', ...user('hi') });
			assert.equal(up.hits, 0, 'a request went to grok.com directly, bypassing the pool');
			assert.equal(r.status, 200, r.body);
			const recs = await d.fake.requests('?path=/rest/app-chat/conversations/new');
			assertProxied(recs[0], 'p1', up.host);
		} finally { await d.stop(); await up.stop(); }
	});
});
