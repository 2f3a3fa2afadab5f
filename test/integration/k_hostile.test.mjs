// Hostile clients (issue 7), beyond h_hostile.test.mjs (framing, sizes,
// UTF-8, nesting, header injection): 2,000 slowloris connections while
// normal clients are timed, a wrong API key 10,000 times on keep-alive
// connections, and path traversal against every route that serves files.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';

import { SANITIZED, bearer, chat, metrics, percentile, request, run, sleep,
	startWithFake, tokenFile, until, workersOf } from './lib.mjs';

const HI = { model: 'grok-4.1', messages: [{ role: 'user', content: 'hi [tokens=5]' }] };

// n sequential /healthz and chats on fresh connections: their times.
async function timings(d, n, headers = {}) {
	const hz = [], ch = [];
	for (let i = 0; i < n; i++) {
		let t0 = Date.now();
		assert.equal((await request(d.url('/healthz'))).status, 200);
		hz.push(Date.now() - t0);
		if (i % 5 === 0) {
			t0 = Date.now();
			const r = await chat(d, HI, headers);
			assert.equal(r.status, 200, r.body);
			ch.push(Date.now() - t0);
		}
	}
	return { hz, ch, p99hz: percentile(hz, 99), p99ch: percentile(ch, 99),
		p95ch: percentile(ch, 95),
		p50hz: percentile(hz, 50), p50ch: percentile(ch, 50) };
}

test('2,000 slowloris connections: normal clients still answered in their usual time', async (t) => {
	const d = await startWithFake({ workers: 2, tokens: tokenFile(['slow-a', 'slow-b']) },
		['-q', '1000000']);
	const socks = [];
	let drip;
	try {
		await timings(d, 20); // warm up
		const before = await timings(d, 200);
		// 1,000 idle connections (nothing sent) and 1,000 that send a
		// partial header and then one more byte a second.
		let connected = 0, closedByServer = 0;
		for (let i = 0; i < 2000; i++) {
			const s = net.connect(d.port, '127.0.0.1');
			s.on('connect', () => {
				connected++;
				if (i % 2) s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
			});
			s.on('error', () => {});
			s.on('close', () => { if (!s.mine) closedByServer++; });
			socks.push(s);
			if (i % 100 === 99) await sleep(10);
		}
		await until(() => connected === 2000, 20000, '2,000 connections open');
		drip = setInterval(() => {
			for (let i = 1; i < socks.length; i += 2)
				if (!socks[i].destroyed) socks[i].write('a');
		}, 1000);
		await sleep(1500);
		const during = await timings(d, 200);
		const m = await metrics(d);
		const open = socks.filter((s) => !s.destroyed).length;
		t.diagnostic(`before: /healthz p50 ${before.p50hz} p99 ${before.p99hz} ms, chat p50 ` +
			`${before.p50ch} p95 ${before.p95ch} p99 ${before.p99ch} ms; with 2,000 slowloris connections ` +
			`(${open} still open, ${closedByServer} closed by the server): /healthz p50 ` +
			`${during.p50hz} p99 ${during.p99hz} ms, chat p50 ${during.p50ch} p95 ${during.p95ch} p99 ` +
			`${during.p99ch} ms`);
		// Every normal request was answered (asserted in timings), and
		// within its usual time: p99 at most 3x before, with 100 ms of
		// slack for a loaded 2-core machine (and the sanitizer build).
		assert.ok(during.p99hz <= 3 * before.p99hz + 100,
			`/healthz p99 ${during.p99hz} ms vs ${before.p99hz} ms before`);
		// A chat is one in five requests: 40 of them, whose p99 is the
		// slowest one, and one scheduler hiccup of an ASan build on two
		// busy cores (276 ms once in CI) is not starvation. Starved
		// chats would be slow by the handful: p95 says so.
		assert.ok(during.p95ch <= 3 * before.p95ch + 100,
			`chat p95 ${during.p95ch} ms vs ${before.p95ch} ms before`);
		assert.equal(open, 2000, 'the server dropped slow clients within connection_timeout?');
		assert.equal(m.webproxyd_workers, 2);
		assert.equal(workersOf(d).length, 2);
	} finally {
		clearInterval(drip);
		for (const s of socks) { s.mine = true; s.destroy(); }
		await d.stop();
	}
});

test('slow drips within connection_timeout keep a connection; idle ones are closed', async (t) => {
	// connection_timeout bounds silence, not how long a header may take.
	const d = await startWithFake({ workers: 1, tokens: tokenFile(['drip-a']),
		server: { connection_timeout: 2 } });
	const socks = [];
	let drip;
	try {
		const closedAt = new Map();
		const t0 = Date.now();
		for (let i = 0; i < 200; i++) {
			const s = net.connect(d.port, '127.0.0.1');
			s.on('connect', () => { if (i % 2) s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: '); });
			s.on('error', () => {});
			s.on('close', () => closedAt.set(i, Date.now() - t0));
			socks.push(s);
		}
		drip = setInterval(() => {
			for (let i = 1; i < socks.length; i += 2)
				if (!socks[i].destroyed) socks[i].write('a');
		}, 1000);
		await sleep(6000);
		const idleClosed = [...closedAt].filter(([i]) => i % 2 === 0).map(([, ms]) => ms);
		const dripClosed = [...closedAt].filter(([i]) => i % 2 === 1).length;
		assert.equal(idleClosed.length, 100, 'idle connections outlive connection_timeout');
		assert.ok(Math.max(...idleClosed) < 2000 + 2000, `idle closed after ${Math.max(...idleClosed)} ms`);
		assert.equal((await request(d.url('/healthz'))).status, 200);
		t.diagnostic(`connection_timeout 2 s: 100 idle connections closed after ` +
			`${Math.min(...idleClosed)}..${Math.max(...idleClosed)} ms; ${100 - dripClosed} of 100 ` +
			'one-byte-a-second header drips still open after 6 s (no deadline for a whole header)');
	} finally {
		clearInterval(drip);
		for (const s of socks) s.destroy();
		await d.stop();
	}
});

test('a wrong API key 10,000 times on keep-alive connections: all 401, the daemon fine', async (t) => {
	const KEY = 'sk-right-key-for-the-brute-force-test-0123456789';
	const d = await startWithFake({ workers: 2, tokens: tokenFile(['brute-a']),
		server: { api_keys: [KEY] } });
	const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
	try {
		const rss = () => workersOf(d).map((w) => Number(fs.readFileSync(`/proc/${w.pid}/status`, 'utf8')
			.match(/VmRSS:\s+(\d+)/)[1]));
		const rssBefore = rss();
		let sockets = 0;
		agent.on('free', () => {});
		const origCreate = agent.createConnection.bind(agent);
		agent.createConnection = (...a) => { sockets++; return origCreate(...a); };
		const statuses = new Map();
		let bodyBad = 0, throttled = 0;
		const logFrom = d.log.length;
		const t0 = Date.now();
		const one = (i) => new Promise((resolve) => {
			// Half share the right key's first 40 bytes, half nothing.
			const key = i % 2 ? `${KEY.slice(0, 40)}xxxxxxxx${i}` : `sk-wrong-${i}`;
			const r = http.request(d.url(i % 3 ? '/v1/models' : '/v1/chat/completions'),
				{ agent, method: i % 3 ? 'GET' : 'POST',
					headers: { ...bearer(key), 'content-type': 'application/json' } }, (res) => {
					let b = '';
					res.on('data', (c) => { b += c; });
					res.on('end', () => {
						statuses.set(res.statusCode, (statuses.get(res.statusCode) || 0) + 1);
						if (res.statusCode === 429) throttled++;
						let j;
						try { j = JSON.parse(b); } catch { j = null; }
						if (!j?.error || j.error.code !== 'invalid_api_key' || b.includes(key)) bodyBad++;
						resolve();
					});
				});
			r.on('error', () => { statuses.set('error', (statuses.get('error') || 0) + 1); resolve(); });
			r.end(i % 3 ? undefined : JSON.stringify(HI));
		});
		let next = 0;
		await Promise.all(Array.from({ length: 16 }, async () => {
			while (next < 10000) await one(next++);
		}));
		const ms = Date.now() - t0;
		assert.deepEqual([...statuses], [[401, 10000]]);
		assert.equal(bodyBad, 0, 'an error body without invalid_api_key, or echoing the key');
		// Still serving the right key, nothing restarted, no key in the log.
		assert.equal((await request(d.url('/v1/models'), { headers: bearer(KEY) })).status, 200);
		assert.equal((await chat(d, HI, bearer(KEY))).status, 200);
		const m = await metrics(d, bearer(KEY));
		assert.equal(m.webproxyd_respawns_total, 0);
		assert.ok(m['webproxyd_errors_total{class="4xx"}'] >= 10000);
		const logged = d.log.slice(logFrom);
		assert.ok(!logged.includes('sk-wrong-') && !logged.includes(KEY.slice(0, 40)), 'a key in the log');
		const rssAfter = rss();
		const grew = rssAfter.map((v, i) => v - rssBefore[i]);
		// (ASan's quarantine keeps freed memory: no figure to hold it to.)
		if (!SANITIZED) assert.ok(grew.every((g) => g < 20000), `worker RSS grew ${grew} KiB`);
		t.diagnostic(`10,000 wrong keys in ${ms} ms (${Math.round(10000 / (ms / 1000))}/s) over ` +
			`${sockets} connections: all 401, ${throttled} throttled; worker RSS ${rssBefore} -> ` +
			`${rssAfter} KiB; ${logged.split('\n').filter(Boolean).length} log lines`);
		// Keep-alive: 16 lanes need 16 connections (a few more after an
		// idle timeout). libmicrohttpd closes the connection after any
		// answer queued before the request is fully received (microhttpd.h,
		// MHD_AccessHandlerCallback), which the worker does for every GET.
		assert.ok(sockets <= 64, `${sockets} connections for 10,000 requests (6,667 GETs, ` +
			'3,333 POSTs): the daemon closes the connection after each GET answer');
	} finally {
		agent.destroy();
		await d.stop();
	}
});

// ---- path traversal ------------------------------------------------------

// One raw request; resolves { status, head, body }.
function raw(port, target, headers = '') {
	return new Promise((resolve, reject) => {
		const s = net.connect(port, '127.0.0.1');
		let out = '';
		const timer = setTimeout(() => { s.destroy(); reject(new Error(`no answer to ${target}`)); }, 5000);
		s.on('data', (b) => { out += b.toString('latin1'); });
		s.on('close', () => {
			clearTimeout(timer);
			const i = out.indexOf('\r\n\r\n');
			resolve({ status: Number(out.slice(9, 12)), head: out.slice(0, i), body: out.slice(i + 4) });
		});
		s.on('error', () => {});
		s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${headers}\r\n`);
	});
}

test('path traversal on every route that serves files', async (t) => {
	const PASSWORD = 'traversal test admin password';
	const hash = run(['--hash-password'], `${PASSWORD}\n`).stdout.trim();
	const SECRET_TOKEN = 'traversal-secret-sso-token-value-42';
	const KEY = 'sk-traversal-api-key-4242';
	const d = await startWithFake({ workers: 1, tokens: tokenFile([SECRET_TOKEN]),
		server: { api_keys: [KEY], admin_password: hash } });
	try {
		// A real cached image, a symlink and a directory with valid names.
		const img = path.join(d.dir, 'data/temp/image');
		fs.mkdirSync(img, { recursive: true });
		const real = `${'a'.repeat(32)}.jpg`;
		fs.writeFileSync(path.join(img, real), 'JPEGDATA');
		fs.symlinkSync(d.tokenPath, path.join(img, `${'b'.repeat(32)}.jpg`));
		fs.symlinkSync('/etc/passwd', path.join(img, `${'c'.repeat(32)}.png`));
		fs.mkdirSync(path.join(img, `${'d'.repeat(32)}.jpg`));
		fs.mkdirSync(path.join(d.dir, 'data/temp/video'), { recursive: true });
		assert.equal((await raw(d.port, `/images/image/${real}`)).status, 200, 'the real file serves');
		// A query is not part of the name.
		const q = await raw(d.port, `/images/image/${real}?../../config.yaml`);
		assert.equal(q.status, 200);
		assert.equal(q.body, 'JPEGDATA');
		const login = await request(d.url('/api/login'), { method: 'POST',
			headers: { 'content-type': 'application/json' }, body: JSON.stringify({ password: PASSWORD }) });
		assert.equal(login.status, 200, login.body);
		const cookie = [login.headers['set-cookie']].flat()[0].split(';')[0];
		const dots = ['../', '..%2f', '%2e%2e/', '%2e%2e%2f', '..%252f', '....//', '..\\', '..%5c',
			'%c0%ae%c0%ae/', '.%2e/', '%2e./'];
		const targets = ['accounts/grok/token.json', 'config.yaml', 'etc/passwd'];
		const routes = ['/images/image/', '/images/video/', '/images/', '/projects/grok/',
			'/api/', '/api/projects/grok/tokens/', '/api/cache/', '/v1/models/'];
		const reqs = [];
		for (const r of routes)
			for (const dd of dots)
				for (const tg of targets)
					for (const depth of [1, 4, 8])
						reqs.push(r + dd.repeat(depth) + tg);
		for (const r of routes) {
			reqs.push(`${r}%00../../config.yaml`, `${r}${real}%00.jpg`, `${r}/etc/passwd`,
				`${r}%2fetc%2fpasswd`, `${r}${real}/../../../config.yaml`,
				`${r}index.html/../../../config.yaml`, `${r}..`, `${r}.`, `${r}%2e%2e`);
		}
		reqs.push(`/images/image/${'b'.repeat(32)}.jpg`, `/images/image/${'c'.repeat(32)}.png`,
			`/images/image/${'d'.repeat(32)}.jpg`, `/images/video/${real}`,
			`/images/image/${real.toUpperCase()}`,
			'http://x/../../etc/passwd', '//etc/passwd', '/../../etc/passwd', '/..%2f..%2fetc/passwd');
		const headerSets = [`Authorization: Bearer ${KEY}\r\nCookie: ${cookie}\r\n`, ''];
		const leaks = [], ok200 = [], noAnswer = new Set();
		const statuses = new Map();
		let sent = 0;
		for (const h of headerSets) {
			for (const target of reqs) {
				const r = await raw(d.port, target, h);
				sent++;
				statuses.set(r.status, (statuses.get(r.status) || 0) + 1);
				if (!r.status) noAnswer.add(target);
				// The files' contents (error bodies may echo the path asked).
				if (r.body.includes(SECRET_TOKEN) || /root:x?:0:0/.test(r.body) ||
					r.body.includes(KEY) || r.body.includes('data_dir: "') ||
					r.body.includes('"ssoNormal": {') || r.body.includes('JPEGDATA'))
					leaks.push(`${target} -> ${r.status}`);
				if (r.status === 200 && !target.startsWith('/projects/grok/'))
					ok200.push(target);
			}
		}
		assert.deepEqual(leaks, [], 'a file outside the routes was served');
		// Only the panel route may answer 200 (its own files), never others.
		assert.deepEqual(ok200, []);
		assert.equal((await request(d.url('/healthz'))).status, 200);
		t.diagnostic(`${sent} traversal requests over ${routes.length} routes: statuses ` +
			JSON.stringify(Object.fromEntries(statuses)) + `; closed without an answer: ${[...noAnswer].join(" ")}`);
	} finally { await d.stop(); }
});

// Error messages quote the path or the model asked for (cut to 100 or 200
// bytes). Bytes that are not UTF-8, or a character cut in two by that
// limit, must still give the error envelope, not a dropped connection.
test('an error that quotes the client never drops the connection', async (t) => {
	const d = await startWithFake({ workers: 1, tokens: tokenFile(['utf8-a']) });
	try {
		const a = (n) => 'a'.repeat(n);
		const paths = ['/v1/models/%c0%ae', '/nothing/%ff', `/v1/models/${a(99)}%c3%a9`,
			`/nothing/${a(190)}%e2%82%ac%e2%82%ac`, `/v1/models/${a(98)}%c3%a9`];
		const got = [];
		for (const p of paths) {
			const r = await raw(d.port, p);
			got.push(`${p.length > 40 ? `${p.slice(0, 12)}…${p.slice(-12)}` : p} -> ${r.status || 'closed, no answer'}`);
		}
		for (const model of [`${a(99)}é`, `${a(98)}é`]) {
			let status;
			try { status = (await chat(d, { model, messages: [{ role: 'user', content: 'hi' }] })).status; }
			catch (e) { status = e.code; }
			got.push(`chat model ${model.length} chars -> ${status}`);
		}
		t.diagnostic(got.join('\n'));
		assert.equal((await request(d.url('/healthz'))).status, 200);
		assert.deepEqual(got.filter((g) => !/ -> 404$/.test(g)), [], 'answered with a 404');
	} finally { await d.stop(); }
});
