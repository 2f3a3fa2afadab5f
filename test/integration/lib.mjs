// Shared helpers for the integration tests: start the real webproxyd (and
// the fake grok.com) on free loopback ports with a temporary data folder,
// make HTTP requests on fresh connections, read the logs, and check that
// nothing is left behind.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const BUILD = process.env.WEBPROXYD_BUILD ||
	path.resolve(import.meta.dirname, '../../build');
export const BIN = path.join(BUILD, 'webproxyd');
export const FAKE = path.join(BUILD, 'fakegrok');

export function tmpdir(prefix = 'wpd-') {
	return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// A YAML config; sections are objects of scalars, arrays of scalars or
// arrays of flat objects (grok.models).
export function yaml(cfg) {
	const v = (x) => typeof x === 'string' ? JSON.stringify(x) : String(x);
	const item = (e) => e !== null && typeof e === 'object'
		? Object.entries(e).map(([kk, vv], i) =>
			`${i ? '      ' : '    - '}${kk}: ${v(vv)}\n`).join('')
		: `    - ${v(e)}\n`;
	let out = '';
	for (const [sec, body] of Object.entries(cfg)) {
		out += `${sec}:\n`;
		for (const [k, val] of Object.entries(body)) {
			if (Array.isArray(val))
				out += val.length ? `  ${k}:\n` + val.map(item).join('') : `  ${k}: []\n`;
			else if (val !== null && typeof val === 'object')
				out += `  ${k}:\n` + Object.entries(val).map(([kk, vv]) => `    ${kk}: ${v(vv)}\n`).join('');
			else
				out += `  ${k}: ${v(val)}\n`;
		}
	}
	return out;
}

export function tokenEntry(extra = {}) {
	return {
		createdTime: 1706745600000, remainingQueries: -1,
		heavyremainingQueries: -1, status: 'active', failedCount: 0,
		lastFailureTime: null, lastFailureReason: null, tags: [], note: '',
		...extra,
	};
}

export function tokenFile(normal = [], sup = []) {
	const o = { ssoNormal: {}, ssoSuper: {} };
	for (const t of normal) o.ssoNormal[t] = tokenEntry();
	for (const t of sup) o.ssoSuper[t] = tokenEntry();
	return o;
}

// Start webproxyd. opts: { server, grok, projects, tokens (object for
// token.json), args (extra CLI), workers }. Resolves once /healthz answers.
export async function startDaemon(opts = {}) {
	const dir = opts.dir || tmpdir();
	const cfgPath = path.join(dir, 'config.yaml');
	const cfg = {
		server: { listen: '127.0.0.1:0', workers: opts.workers ?? 2,
			data_dir: dir, log_level: 'info', api_keys: [],
			...(opts.server || {}) },
		projects: { grok: { enabled: true } },
		grok: { ...(opts.grok || {}) },
	};
	if (opts.projects) cfg.projects = opts.projects;
	fs.writeFileSync(cfgPath, opts.rawConfig ?? yaml(cfg));
	if (opts.tokens) {
		fs.mkdirSync(path.join(dir, 'accounts/grok'), { recursive: true });
		fs.writeFileSync(path.join(dir, 'accounts/grok/token.json'),
			JSON.stringify(opts.tokens, null, 2));
	}
	const args = ['-f', '-c', cfgPath, '-p', path.join(dir, 'webproxyd.pid'),
		...(opts.args || [])];
	const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
	const d = new Daemon(proc, dir, cfgPath);
	try {
		await d.ready();
	} catch (e) {
		// Never leave a half-started daemon behind a failed test.
		if (proc.exitCode === null) proc.kill('SIGKILL');
		throw e;
	}
	return d;
}

export class Daemon {
	constructor(proc, dir, cfgPath) {
		this.proc = proc;
		this.pid = proc.pid;
		this.dir = dir;
		this.cfgPath = cfgPath;
		this.log = '';
		this.exited = new Promise((resolve) => proc.on('exit',
			(code, signal) => resolve({ code, signal })));
		for (const s of [proc.stdout, proc.stderr])
			s.on('data', (b) => { this.log += b.toString(); });
	}

	get tokenPath() { return path.join(this.dir, 'accounts/grok/token.json'); }

	async ready(timeoutMs = 10000) {
		const t0 = Date.now();
		while (Date.now() - t0 < timeoutMs) {
			const m = this.log.match(/webproxyd started: \d+ workers on ([\d.]+):(\d+)/);
			if (m && !this.port) {
				this.host = m[1];
				this.port = Number(m[2]);
			}
			if (this.port) {
				try {
					const r = await request(this.url('/healthz'));
					if (r.status === 200) return;
				} catch { /* not yet */ }
			}
			if (this.proc.exitCode !== null)
				throw new Error(`webproxyd exited ${this.proc.exitCode}:\n${this.log}`);
			await sleep(25);
		}
		throw new Error(`webproxyd not ready in ${timeoutMs} ms:\n${this.log}`);
	}

	url(p) { return `http://${this.host}:${this.port}${p}`; }

	// Wait until the log (from offset from) matches re.
	async waitLog(re, timeoutMs = 10000, from = 0) {
		const t0 = Date.now();
		while (Date.now() - t0 < timeoutMs) {
			if (re.test(this.log.slice(from))) return;
			await sleep(25);
		}
		throw new Error(`log never matched ${re}:\n${this.log}`);
	}

	signal(sig) { process.kill(this.pid, sig); }

	children() { return childrenOf(this.pid); }

	async stop(sig = 'SIGTERM') {
		if (this.proc.exitCode === null && this.proc.signalCode === null)
			this.signal(sig);
		return this.exited;
	}
}

// [{pid, args}] of the direct children of pid.
export function childrenOf(pid) {
	const r = spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(pid)],
		{ encoding: 'utf8' });
	return r.stdout.split('\n').filter((l) => l.trim()).map((l) => {
		const m = l.trim().match(/^(\d+)\s+(.*)$/);
		return { pid: Number(m[1]), args: m[2] };
	});
}

// Whether pid runs; a zombie (dead, not yet reaped by whoever adopted
// it) does not count.
export function alive(pid) {
	try {
		const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
		return st.slice(st.lastIndexOf(')') + 2)[0] !== 'Z';
	} catch { return false; }
}

export function shmSegments() {
	return fs.readdirSync('/dev/shm').filter((f) => f.startsWith('webproxyd'));
}

// One HTTP request on a fresh connection. Resolves {status, headers, body,
// json}.
export function request(url, { method = 'GET', headers = {}, body } = {}) {
	return new Promise((resolve, reject) => {
		const req = http.request(url, { method, headers, agent: false },
			(res) => {
				const chunks = [];
				res.on('data', (c) => chunks.push(c));
				res.on('end', () => {
					const text = Buffer.concat(chunks).toString();
					let json;
					try { json = JSON.parse(text); } catch { json = undefined; }
					resolve({ status: res.statusCode, headers: res.headers, body: text, json });
				});
				res.on('error', reject);
			});
		req.on('error', reject);
		req.setTimeout(15000, () => req.destroy(new Error('request timed out')));
		if (body !== undefined) req.write(body);
		req.end();
	});
}

export function run(args, input) {
	return spawnSync(BIN, args, { encoding: 'utf8', input, timeout: 20000 });
}

export function bearer(key) { return { authorization: `Bearer ${key}` }; }

export { sleep, execFileSync };

// Start the fake grok.com (build/fakegrok) on a free port. Resolves
// { url, port, proc, stop(), requests(query), tokens(), reset() }.
export async function startFake(args = []) {
	const proc = spawn(FAKE, ['-l', '127.0.0.1:0', ...args],
		{ stdio: ['ignore', 'pipe', 'pipe'] });
	let out = '';
	proc.stdout.on('data', (b) => { out += b.toString(); });
	proc.stderr.on('data', (b) => { out += b.toString(); });
	const t0 = Date.now();
	let m;
	while (!(m = out.match(/listening 127\.0\.0\.1:(\d+)/))) {
		if (proc.exitCode !== null) throw new Error(`fakegrok exited:\n${out}`);
		if (Date.now() - t0 > 5000) throw new Error(`fakegrok not ready:\n${out}`);
		await sleep(10);
	}
	const port = Number(m[1]);
	const url = `http://127.0.0.1:${port}`;
	const exited = new Promise((resolve) => proc.on('exit', resolve));
	return {
		url, port, proc,
		log: () => out,
		async requests(query = '') {
			return (await request(`${url}/__fake/requests${query}`)).json;
		},
		async tokens() { return (await request(`${url}/__fake/tokens`)).json; },
		async stats() { return (await request(`${url}/__fake/stats`)).json; },
		async reset() { await request(`${url}/__fake/reset`, { method: 'POST' }); },
		// Set a token's quota or fault counters: {token, remaining, heavy,
		// wait, fault_hits}.
		async setToken(o) {
			const r = await request(`${url}/__fake/tokens`, { method: 'POST',
				headers: { 'content-type': 'application/json' },
				body: JSON.stringify(o) });
			if (r.status !== 200) throw new Error(`__fake/tokens: ${r.body}`);
			return r.json;
		},
		// The proxy-pool API (GET /__fake/proxy): {urls, per_answer, status}.
		async proxyPool(o) {
			const r = await request(`${url}/__fake/proxy`, { method: 'POST',
				headers: { 'content-type': 'application/json' },
				body: JSON.stringify(o) });
			if (r.status !== 200) throw new Error(`__fake/proxy: ${r.body}`);
			return r.json;
		},
		async proxyState() { return (await request(`${url}/__fake/proxy/state`)).json; },
		async stop() {
			if (proc.exitCode === null) proc.kill('SIGTERM');
			await exited;
		},
	};
}

// webproxyd in front of a fake: grok.upstream_url and assets_url point
// at it. opts as for startDaemon; opts.grok may also be a function of the
// fake (for settings that need its URL, like a proxy), and opts.beforeStart
// an async function of the fake run before the daemon starts.
export async function startWithFake(opts = {}, fakeArgs = []) {
	const fake = await startFake(fakeArgs);
	const grok = typeof opts.grok === 'function' ? opts.grok(fake) : opts.grok;
	if (opts.beforeStart) await opts.beforeStart(fake);
	let d;
	try {
		d = await startDaemon({ ...opts,
			grok: { upstream_url: fake.url, assets_url: fake.url, ...(grok || {}) } });
	} catch (e) { await fake.stop(); throw e; }
	d.fake = fake;
	const stop = d.stop.bind(d);
	d.stop = async (sig) => { const r = await stop(sig); await fake.stop(); return r; };
	return d;
}

// POST a chat completion; resolves the raw response.
export function chat(d, body, headers = {}) {
	return request(d.url('/v1/chat/completions'), { method: 'POST',
		headers: { 'content-type': 'application/json', ...headers },
		body: JSON.stringify(body) });
}

// The data: payloads of an SSE body, parsed ("[DONE]" kept as a string).
export function sseEvents(text) {
	const out = [];
	for (const block of text.split('\n\n')) {
		for (const line of block.split('\n')) {
			if (!line.startsWith('data: ')) continue;
			const p = line.slice(6);
			out.push(p === '[DONE]' ? p : JSON.parse(p));
		}
	}
	return out;
}

// Poll fn() until it returns something truthy; resolves that value. Throws
// after timeoutMs, naming what was awaited and the last value seen.
export async function until(fn, timeoutMs = 5000, what = 'condition', stepMs = 25) {
	const t0 = Date.now();
	let last;
	for (;;) {
		last = await fn();
		if (last) return last;
		if (Date.now() - t0 > timeoutMs)
			throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
				(last !== undefined ? ` (last: ${JSON.stringify(last)})` : ''));
		await sleep(stepMs);
	}
}

// token.json as the master last wrote it, or null if there is none yet.
export function readTokens(d) {
	try { return JSON.parse(fs.readFileSync(d.tokenPath, 'utf8')); } catch { return null; }
}

// Wait until the master has persisted a token.json for which pred(json)
// is true (it writes at most about once a second); resolves the json.
export async function waitTokens(d, pred, timeoutMs = 5000, what = 'token.json') {
	let last = null;
	try {
		return await until(() => {
			last = readTokens(d);
			return last && pred(last) ? last : false;
		}, timeoutMs, what, 50);
	} catch (e) {
		e.message += `\nlast token.json: ${JSON.stringify(last)}`;
		throw e;
	}
}

// One token's entry in a token.json object, whichever pool holds it.
export function tokenOf(tf, token) {
	return tf?.ssoNormal?.[token] ?? tf?.ssoSuper?.[token];
}

// A streamed chat on its own connection, for tests that read part of it
// and then hang up. Resolves { res, status, headers, text(), events(),
// waitFor(pred), close() } once the response head arrives.
export function openStream(d, body, headers = {}) {
	return new Promise((resolve, reject) => {
		const req = http.request(d.url('/v1/chat/completions'), { method: 'POST',
			headers: { 'content-type': 'application/json', ...headers }, agent: false });
		req.on('error', reject);
		req.on('response', (res) => {
			let text = '';
			let ended = false;
			const waiters = new Set();
			const poke = () => { for (const w of waiters) w(); };
			res.on('data', (c) => { text += c; poke(); });
			res.on('end', () => { ended = true; poke(); });
			res.on('error', () => { ended = true; poke(); });
			resolve({
				res, status: res.statusCode, headers: res.headers,
				text: () => text,
				events: () => sseEvents(text.slice(0, text.lastIndexOf('\n\n') + 2)),
				ended: () => ended,
				// Resolves once pred(text) holds; rejects if the stream ends first.
				waitFor(pred, timeoutMs = 10000) {
					return new Promise((ok, fail) => {
						const timer = setTimeout(() => { waiters.delete(check);
							fail(new Error(`stream: no match in ${timeoutMs} ms:\n${text}`)); },
						timeoutMs);
						const check = () => {
							if (pred(text)) { clearTimeout(timer); waiters.delete(check); ok(text); }
							else if (ended) { clearTimeout(timer); waiters.delete(check);
								fail(new Error(`stream ended first:\n${text}`)); }
						};
						waiters.add(check);
						check();
					});
				},
				close() { req.destroy(); },
			});
		});
		req.end(JSON.stringify(body));
	});
}

// ---- fault-injection and hostile-client helpers (k_*.test.mjs) ----

// /metrics as { name or name{labels}: number }.
export async function metrics(d, headers = {}) {
	const r = await request(d.url('/metrics'), { headers });
	if (r.status !== 200) throw new Error(`/metrics: ${r.status} ${r.body}`);
	const out = {};
	for (const line of r.body.split('\n')) {
		const m = line.match(/^([a-z_]+(?:\{[^}]*\})?) (\S+)$/);
		if (m) out[m[1]] = Number(m[2]);
	}
	return out;
}

// One streamed chat on its own connection, read to its end whatever
// happens. Never rejects: resolves { status, text, events, done (ended
// with [DONE]), cut (the connection closed before a complete answer),
// error, ms, end (Date.now() at the end), port (the client's local port,
// to find the serving process) }.
// The promise also carries .firstByte (resolves at the first body byte or
// the end) and .conn.port, set once connected.
export function streamChat(d, body, headers = {}, timeoutMs = 60000) {
	const t0 = Date.now();
	let firstOk;
	const firstByte = new Promise((ok) => { firstOk = ok; });
	const conn = { port: 0 };
	const p = new Promise((resolve) => {
		let text = '', status = 0, settled = false;
		const finish = (error) => {
			if (settled) return;
			settled = true;
			clearTimeout(timer);
			firstOk();
			let events = [];
			let bad = null;
			try { events = sseEvents(text.slice(0, text.lastIndexOf('\n\n') + 2)); }
			catch (e) { bad = e; }
			const done = text.endsWith('data: [DONE]\n\n');
			resolve({ status, text, events, bad, done, cut: !done, error,
				ms: Date.now() - t0, end: Date.now(), port: conn.port });
		};
		const req = http.request(d.url('/v1/chat/completions'), { method: 'POST',
			headers: { 'content-type': 'application/json', ...headers }, agent: false });
		const timer = setTimeout(() => { finish('hang'); req.destroy(); }, timeoutMs);
		req.on('socket', (s) => s.on('connect', () => { conn.port = s.localPort; }));
		req.on('error', (e) => finish(e.code || e.message));
		req.on('response', (res) => {
			status = res.statusCode;
			res.on('data', (c) => { text += c; firstOk(); });
			res.on('end', () => finish(null));
			res.on('error', (e) => finish(e.code || e.message));
			res.on('aborted', () => finish('aborted'));
			res.on('close', () => finish(res.complete ? null : 'closed'));
		});
		req.end(JSON.stringify(body));
	});
	p.firstByte = firstByte;
	p.conn = conn;
	return p;
}

// Which of pids holds the server side of the loopback TCP connection
// whose client end has local port clientPort (to serverPort). Reads
// /proc/net/tcp{,6} and each pid's fd table. Returns a Map clientPort ->
// pid for all the given ports at once.
export function connOwners(serverPort, clientPorts, pids) {
	const want = new Set(clientPorts);
	const inodeOf = new Map(); // inode -> client port
	for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
		let text = '';
		try { text = fs.readFileSync(f, 'utf8'); } catch { continue; }
		for (const line of text.split('\n').slice(1)) {
			const c = line.trim().split(/\s+/);
			if (c.length < 10) continue;
			const lport = parseInt(c[1].split(':')[1], 16);
			const rport = parseInt(c[2].split(':')[1], 16);
			if (lport === serverPort && want.has(rport) && c[9] !== '0')
				inodeOf.set(c[9], rport);
		}
	}
	const out = new Map();
	for (const pid of pids) {
		let fds = [];
		try { fds = fs.readdirSync(`/proc/${pid}/fd`); } catch { continue; }
		for (const fd of fds) {
			let l;
			try { l = fs.readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }
			const m = l.match(/^socket:\[(\d+)\]$/);
			if (m && inodeOf.has(m[1])) out.set(inodeOf.get(m[1]), pid);
		}
	}
	return out;
}

// The worker children of a daemon: [{pid, args, n}] (n: its slot, 1..).
export function workersOf(d) {
	return d.children().filter((c) => /worker \d+/.test(c.args))
		.map((c) => ({ ...c, n: Number(c.args.match(/worker (\d+)/)[1]) }));
}

// The p-th percentile (0..100) of an array of numbers.
export function percentile(xs, p) {
	if (xs.length === 0) return NaN;
	const s = [...xs].sort((a, b) => a - b);
	return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

// Whether token.json at path parses as a token file (both maps present).
export function tokenFileValid(p) {
	try {
		const j = JSON.parse(fs.readFileSync(p, 'utf8'));
		return typeof j.ssoNormal === 'object' && typeof j.ssoSuper === 'object';
	} catch { return false; }
}

// Whether the daemon under test is built with ASan (make asan): timings
// and memory figures then mean little.
export const SANITIZED = (() => {
	try { return fs.readFileSync(BIN).includes('__asan_init'); } catch { return false; }
})();

// Under `make asan` (WEBPROXYD_SAN_REPORTS set): ASan writes its reports
// to files there (log_path), but next to ASan, gcc's UBSan runtime ignores
// log_path and prints to stderr, which for a daemon or the fake is only
// their log here. When this test process exits, what a sanitizer said in
// the log of each daemon and fake started here is written to that folder
// too, where run.sh counts it as a failure.
const SAN_DIR = process.env.WEBPROXYD_SAN_REPORTS;
if (SAN_DIR) {
	const SAN_RE = /runtime error:|ERROR: (Address|Leak)Sanitizer|SUMMARY: \w+Sanitizer/;
	const logs = new Set(); // [pid, () => text]
	const ready = Daemon.prototype.ready;
	Daemon.prototype.ready = function (...a) {
		logs.add([this.pid, () => this.log]);
		return ready.apply(this, a);
	};
	const fake0 = startFake;
	startFake = async (...a) => {
		const f = await fake0(...a);
		logs.add([f.proc.pid, f.log]);
		return f;
	};
	process.on('exit', () => {
		for (const [pid, text] of logs) {
			const lines = text().split('\n');
			const i = lines.findIndex((l) => SAN_RE.test(l));
			if (i >= 0)
				fs.writeFileSync(path.join(SAN_DIR, `stderr.${pid}`),
					`${process.argv[1]}\n${lines.slice(Math.max(0, i - 3)).join('\n')}\n`);
		}
	});
}
