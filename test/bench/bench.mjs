#!/usr/bin/env node
// The benchmark of issue 6: every figure of its table, for webproxyd, for
// nginx as the reference reverse proxy in front of the same fake grok.com,
// and for the fake alone (the floor), in one run on this machine. All on
// loopback; every count and time is bounded; every process started here
// is killed at the end, on failure and on Ctrl-C.
//
//   node test/bench/bench.mjs [--build DIR] [--quick] [--reps N]
//                             [--only NAME,...] [--out FILE]
//
// --quick is the sanity run `make test` does: a few seconds, small
// numbers; it checks that the harness works (not the targets) and ends
// with "N passed, N failed". Without it, the table goes to stdout and to
// DIR/bench/results.md. NAMEs: latency, live, throughput, streams, tokens,
// startup, reload. test/bench/README.md says how to read the table.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

// ---- options ----------------------------------------------------------

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
	const i = argv.indexOf(name);
	return i >= 0 ? argv[i + 1] : dflt;
};
const QUICK = argv.includes('--quick');
const BUILD = path.resolve(opt('--build', 'build'));
const REPS = Number(opt('--reps', QUICK ? 1 : 3));
const ONLY = opt('--only', '') ? opt('--only', '').split(',') : null;
const OUT = path.resolve(opt('--out', path.join(BUILD, 'bench',
	QUICK ? 'quick.md' : 'results.md')));

// Sizes: the for a real run, small ones for the sanity run.
const P = QUICK ? {
	latDur: 0.3, latWarm: 0.1, latRounds: 1,
	liveLines: 20, liveConns: 2, liveStreams: 2,
	tputDur: 0.3, tputWarm: 0.1, tputConns: 8,
	streams: 100, streamLines: 3, streamMs: 100, streamRate: 2000,
	streamReps: 1,
	tokSizes: [100, 1000], tokOps: 20000,
	startTokens: 1000,
	reloadStreams: 30, reloadLines: 10, reloadMs: 50,
} : {
	latDur: 0.5, latWarm: 0.1, latRounds: 6,
	liveLines: 200, liveConns: 4, liveStreams: 8,
	tputDur: 4, tputWarm: 1, tputConns: 64,
	streams: 10000, streamLines: 20, streamMs: 1000, streamRate: 1000,
	streamReps: 2,
	tokSizes: [100, 100000], tokOps: 200000,
	startTokens: 100000,
	reloadStreams: 1000, reloadLines: 100, reloadMs: 50,
};

// Server on CPU 0, load (and, where the proxy needs a core to itself,
// the fake) on CPU 1, when there are two CPUs and taskset.
const NCPU = os.cpus().length;
const PIN = NCPU >= 2 && spawnSync('taskset', ['-V']).status === 0;
const SRV = 0, LOAD = 1;

// ---- processes: every one in its own group, all killed at the end -----

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'wpbench-'));
const BIN = path.join(TMP, 'bin');
const groups = new Map(); // pgid -> name
let cleaning = null;

function run(name, cmd, args, { cpu, env, onLine } = {}) {
	const full = PIN && cpu !== undefined
		? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args];
	const p = spawn(full[0], full[1], { detached: true,
		stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
	groups.set(p.pid, name);
	p.out = '';
	p.log = '';
	p.stdout.on('data', (b) => { p.out += b; });
	let partial = '';
	p.stderr.on('data', (b) => {
		p.log = (p.log + b).slice(-65536); // keep the end only
		if (!onLine) return;
		const lines = (partial + b).split('\n');
		partial = lines.pop();
		for (const l of lines) onLine(l);
	});
	p.exited = new Promise((resolve) => p.on('exit', (code, sig) => {
		groups.delete(p.pid);
		resolve({ code, sig });
	}));
	p.on('error', () => {});
	return p;
}

function groupAlive(pg) {
	try { process.kill(-pg, 0); return true; } catch { return false; }
}

async function stop(p, sig = 'SIGTERM', ms = 5000) {
	if (!p) return;
	try { process.kill(-p.pid, sig); } catch { /* gone */ }
	const t0 = Date.now();
	while (groupAlive(p.pid) && Date.now() - t0 < ms) await sleep(20);
	if (groupAlive(p.pid))
		try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
	await Promise.race([p.exited, sleep(1000)]);
	groups.delete(p.pid);
}

async function cleanup() {
	if (cleaning) return cleaning;
	cleaning = (async () => {
		for (const pg of groups.keys())
			try { process.kill(-pg, 'SIGTERM'); } catch { /* gone */ }
		const t0 = Date.now();
		while ([...groups.keys()].some(groupAlive) && Date.now() - t0 < 5000)
			await sleep(50);
		for (const pg of groups.keys())
			try { process.kill(-pg, 'SIGKILL'); } catch { /* gone */ }
		fs.rmSync(TMP, { recursive: true, force: true });
	})();
	return cleaning;
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'])
	process.on(sig, () => {
		console.error(`bench: ${sig}, stopping everything`);
		cleanup().finally(() => process.exit(130));
	});
process.on('exit', () => { // last resort: nothing may outlive us
	for (const pg of groups.keys())
		try { process.kill(-pg, 'SIGKILL'); } catch { /* gone */ }
});

// ---- small helpers ----------------------------------------------------

function freePort() {
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.on('error', reject);
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
	});
}

function get(port, p) {
	return new Promise((resolve) => {
		const r = http.get({ host: '127.0.0.1', port, path: p, agent: false },
			(res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
		r.on('error', () => resolve(0));
		r.setTimeout(2000, () => r.destroy());
	});
}

async function until(what, fn, ms = 15000) {
	const t0 = Date.now();
	for (;;) {
		const v = await fn();
		if (v) return v;
		if (Date.now() - t0 > ms) throw new Error(`${what}: not in ${ms} ms`);
		await sleep(20);
	}
}

// The q-quantile of a series, interpolated between its neighbours.
const quantile = (a, q) => {
	const s = [...a].sort((x, y) => x - y), i = (s.length - 1) * q;
	const lo = Math.floor(i);
	return s.length ? s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo) : NaN;
};
const median = (a) => quantile(a, 0.5);
const fmt = (v, d = 0) => Number.isFinite(v) ? v.toFixed(d) : 'n/a';
// "median (min–max)" of a series, or the one value.
function spread(a, d = 0, unit = '') {
	if (!a.length) return 'n/a';
	const m = fmt(median(a), d) + unit;
	if (a.length === 1) return m;
	return `${m} (${fmt(Math.min(...a), d)}–${fmt(Math.max(...a), d)})`;
}
const plus = (v) => (v >= 0 ? '+' : '') + v;

// ---- /proc: process trees, memory, CPU --------------------------------

function procStat(pid) {
	try {
		const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
		return s.slice(s.lastIndexOf(')') + 2).split(' ');
	} catch { return null; }
}

// pid and all its descendants.
function tree(pid) {
	const kids = new Map();
	for (const e of fs.readdirSync('/proc')) {
		if (!/^\d+$/.test(e)) continue;
		const f = procStat(e);
		if (!f) continue;
		const pp = Number(f[1]);
		if (!kids.has(pp)) kids.set(pp, []);
		kids.get(pp).push(Number(e));
	}
	const out = [];
	const walk = (p) => { out.push(p); for (const k of kids.get(p) || []) walk(k); };
	walk(pid);
	return out;
}

function kbField(file, name) {
	try {
		const m = fs.readFileSync(file, 'utf8').match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'));
		return m ? Number(m[1]) : 0;
	} catch { return 0; }
}

// Memory of a process tree in MiB: the sum of VmRSS (shared pages, the
// shm segment and libraries, counted once per process), of RssShmem, and
// (withPss) of Pss (shared pages split between their users: the honest
// total). Reading smaps_rollup walks the page tables under the process's
// mmap_lock: 20-30 ms for a worker holding 5,000 streams, during which
// its brk and mmap wait. Sampled every 0.5 s it held frames back by tens
// to hundreds of ms, so a figure that times frames reads Pss only once.
function memory(pid, withPss = true) {
	const m = { rss: 0, shmem: 0, pss: 0, procs: 0 };
	for (const p of tree(pid)) {
		const st = procStat(p);
		if (!st || st[0] === 'Z') continue;
		m.rss += kbField(`/proc/${p}/status`, 'VmRSS');
		m.shmem += kbField(`/proc/${p}/status`, 'RssShmem');
		if (withPss) m.pss += kbField(`/proc/${p}/smaps_rollup`, 'Pss');
		m.procs++;
	}
	for (const k of ['rss', 'shmem', 'pss']) m[k] /= 1024;
	return m;
}

const TICK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;
// CPU seconds used so far by a process tree (user + system).
function cpuSeconds(pid) {
	let t = 0;
	for (const p of tree(pid)) {
		const f = procStat(p);
		if (f) t += (Number(f[11]) + Number(f[12])) / TICK;
	}
	return t;
}

// ---- the fake, nginx, webproxyd ---------------------------------------

async function startFake({ cpu, args = [] } = {}) {
	const p = run('fakegrok', path.join(BIN, 'fakegrok'), ['-l', '127.0.0.1:0',
		'-r', '0', '-q', '2000000000', '-H', '2000000000', ...args], { cpu });
	const m = await until('fakegrok', () => {
		if (p.exitCode !== null) throw new Error(`fakegrok exited:\n${p.log}`);
		return p.out.match(/listening 127\.0\.0\.1:(\d+)/);
	}, 5000);
	p.port = Number(m[1]);
	p.url = `http://127.0.0.1:${p.port}`;
	return p;
}

// A YAML config: sections of scalars, lists of scalars, or maps.
function yaml(cfg) {
	const v = (x) => (typeof x === 'string' ? JSON.stringify(x) : String(x));
	const item = ([k, x]) => {
		if (Array.isArray(x))
			return x.length ? `  ${k}:\n` + x.map((e) => `    - ${v(e)}\n`).join('') : `  ${k}: []\n`;
		if (typeof x === 'object')
			return `  ${k}:\n` + Object.entries(x).map(([kk, vv]) => `    ${kk}: ${v(vv)}\n`).join('');
		return `  ${k}: ${v(x)}\n`;
	};
	return Object.entries(cfg).map(([sec, body]) =>
		`${sec}:\n` + Object.entries(body).map(item).join('')).join('');
}

function tokenJson(n) {
	const entry = JSON.stringify({ createdTime: 1706745600000,
		remainingQueries: -1, heavyremainingQueries: -1, status: 'active',
		failedCount: 0, lastFailureTime: null, lastFailureReason: null,
		tags: [], note: '' });
	const rows = [];
	for (let i = 0; i < n; i++)
		rows.push(`"bench-sso-${String(i).padStart(7, '0')}-eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9":${entry}`);
	return `{"ssoNormal":{${rows.join(',')}},"ssoSuper":{}}`;
}

// webproxyd's config.yaml in dir; server adds or changes server keys.
function wpConfig(dir, { workers, tokens, upstream, port = 0, maxTokens }, server = {}) {
	fs.writeFileSync(path.join(dir, 'config.yaml'), yaml({
		server: { listen: `127.0.0.1:${port}`, workers, data_dir: dir,
			log_level: 'notice', api_keys: [], ...server },
		projects: { grok: { enabled: true } },
		grok: { upstream_url: upstream, assets_url: upstream,
			max_tokens: maxTokens ?? Math.max(10000, tokens) },
	}));
}

// The config and token.json of a webproxyd run, in a new folder.
function wpDir(o) {
	const dir = fs.mkdtempSync(path.join(TMP, 'wp-'));
	const { tokens } = o;
	wpConfig(dir, o);
	fs.mkdirSync(path.join(dir, 'accounts/grok'), { recursive: true });
	fs.writeFileSync(path.join(dir, 'accounts/grok/token.json'), tokenJson(tokens));
	return dir;
}

async function startWebproxyd({ cpu, workers, tokens = 64, upstream }) {
	const dir = wpDir({ workers, tokens, upstream });
	const p = run('webproxyd', path.join(BIN, 'webproxyd'),
		['-f', '-c', path.join(dir, 'config.yaml'), '-p', path.join(dir, 'pid')],
		{ cpu });
	const m = await until('webproxyd start', () => {
		if (p.exitCode !== null) throw new Error(`webproxyd exited:\n${p.log}`);
		return p.log.match(/webproxyd started: \d+ workers on [\d.]+:(\d+)/);
	});
	p.port = Number(m[1]);
	p.dir = dir;
	p.cfg = { workers, tokens, upstream, port: p.port };
	await until('webproxyd /healthz', async () => (await get(p.port, '/healthz')) === 200);
	// Every worker up (a reload test counts on it).
	await until('webproxyd workers', () =>
		tree(p.pid).length >= workers + 2 ? true : null, 5000).catch(() => {});
	return p;
}

let nginxVersion = '';
async function startNginx({ cpu, workers, upstreamPort }) {
	const dir = fs.mkdtempSync(path.join(TMP, 'nginx-'));
	const port = await freePort();
	fs.mkdirSync(path.join(dir, 'tmp'));
	const conf = path.join(dir, 'nginx.conf');
	// As §A.4 of the reference: keep-alive to the upstream, HTTP/1.1, no
	// buffering, so nginx passes each line on as it comes.
	fs.writeFileSync(conf, `daemon off;
master_process on;
worker_processes ${workers};
worker_rlimit_nofile 20000;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 20000; use epoll; }
http {
	access_log off;
	client_body_temp_path ${dir}/tmp/body;
	proxy_temp_path ${dir}/tmp/proxy;
	fastcgi_temp_path ${dir}/tmp/fcgi;
	uwsgi_temp_path ${dir}/tmp/uwsgi;
	scgi_temp_path ${dir}/tmp/scgi;
	keepalive_requests 1000000;
	upstream fake {
		server 127.0.0.1:${upstreamPort};
		keepalive 1024;
		keepalive_requests 1000000;
	}
	server {
		listen 127.0.0.1:${port} backlog=4096;
		location / {
			proxy_pass http://fake;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffering off;
			proxy_request_buffering off;
			proxy_read_timeout 300s;
		}
	}
}
`);
	const p = run('nginx', 'nginx', ['-p', dir, '-e', `${dir}/error.log`, '-c', conf], { cpu });
	await until('nginx', async () => {
		if (p.exitCode !== null) throw new Error(`nginx exited:\n${p.log}`);
		return (await get(port, '/__fake/stats')) === 200;
	}, 5000);
	p.port = port;
	if (!nginxVersion)
		nginxVersion = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim();
	return p;
}

// ---- requests ---------------------------------------------------------

const UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.0.0 Safari/537.36';

function rawRequest(p, headers, body) {
	const h = { Host: '127.0.0.1', ...headers, 'Content-Length': Buffer.byteLength(body) };
	return `POST ${p} HTTP/1.1\r\n` +
		Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('') + `\r\n${body}`;
}

// What webproxyd sends grok.com, near enough: the same headers and a
// body of the same shape, so direct and nginx carry a like request.
function grokRequest(message) {
	const tok = 'bench-sso-direct-eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9';
	return rawRequest('/rest/app-chat/conversations/new', {
		'Accept-Encoding': 'deflate, gzip, br, zstd',
		Accept: '*/*', 'Accept-Language': 'zh-CN,zh;q=0.9',
		'Content-Type': 'application/json', Origin: 'https://grok.com',
		Referer: 'https://grok.com/', Priority: 'u=1, i', 'User-Agent': UA,
		'Sec-Ch-Ua': '"Not(A:Brand";v="99", "Google Chrome";v="133", "Chromium";v="133"',
		'Sec-Ch-Ua-Mobile': '?0', 'Sec-Ch-Ua-Platform': '"Windows"',
		'Sec-Fetch-Dest': 'empty', 'Sec-Fetch-Mode': 'cors',
		'Sec-Fetch-Site': 'same-origin',
		Baggage: 'sentry-environment=production,sentry-public_key=b311e0f2690c81f25e2c4cf6d4f7ce1c',
		Cookie: `sso-rw=${tok}; sso=${tok}`,
		'x-statsig-id': Buffer.from('e:bench-statsig-0123456789abcdef0123456789abcdef0123456789abcdef').toString('base64'),
		'x-xai-request-id': '8d5e2a4c-0000-4000-8000-000000000001',
	}, JSON.stringify({ temporary: false, modelName: 'grok-3', message,
		fileAttachments: [], imageAttachments: [], disableSearch: false,
		enableImageGeneration: true, returnImageBytes: false,
		returnRawGrokInXaiRequest: false, enableImageStreaming: true,
		imageGenerationCount: 2, forceConcise: false, toolOverrides: {},
		enableSideBySide: true, sendFinalMetadata: true, isReasoning: false,
		webpageUrls: [], disableTextFollowUps: true,
		responseMetadata: { requestModelDetails: { modelId: 'grok-3' } },
		disableMemory: false, forceSideBySide: false,
		modelMode: 'MODEL_MODE_FAST', isAsyncChat: false }));
}

function openaiRequest(message, stream) {
	return rawRequest('/v1/chat/completions', { 'Content-Type': 'application/json',
		'User-Agent': 'OpenAI/JS 4.0.0', Accept: 'application/json' },
	JSON.stringify({ model: 'grok-3-fast', stream,
		messages: [{ role: 'user', content: message }] }));
}

let reqN = 0;
// Run wpload; resolves its JSON summary. onLine sees its stderr lines.
async function load(port, request, args, { cpu = LOAD, onLine } = {}) {
	const f = path.join(TMP, `req-${reqN++}.http`);
	fs.writeFileSync(f, request);
	const p = run('wpload', path.join(BIN, 'wpload'),
		['-a', `127.0.0.1:${port}`, '-q', f, ...args.map(String)], { cpu, onLine });
	const { code } = await p.exited;
	if (code !== 0) throw new Error(`wpload exited ${code}: ${p.log}`);
	return JSON.parse(p.out);
}

// The three paths of a figure: the fake alone, nginx, webproxyd.
function paths(fake, ngx, wp) {
	return [
		{ name: 'direct', port: fake.port, proc: fake, grok: true },
		{ name: 'nginx', port: ngx?.port, proc: ngx, grok: true },
		{ name: 'webproxyd', port: wp.port, proc: wp, grok: false },
	].filter((x) => x.port);
}

// wpload options for a stream of n stamped lines on this path.
function streamArgs(x, n) {
	return x.grok ? ['-f', 'nd', '-C', '"token":"', '-e', n]
		: ['-f', 'sse', '-C', '"content":"', '-D', '[DONE]', '-e', n];
}

// ---- the figures ------------------------------------------------------

const R = {}; // results, by figure
const checks = []; // [ok, what] for --quick
const check = (ok, what) => { checks.push([!!ok, what]); };
const HAVE_NGINX = spawnSync('nginx', ['-v']).status === 0;
const want = (name) => !ONLY || ONLY.includes(name);
const say = (s) => console.error(`bench: ${s}`);

// Added latency at c=1 (non-stream, 50 tokens) and live streaming at
// 5 ms lines share one set of servers, all on the server CPU.
async function figLatencyLive() {
	const fake = await startFake({ cpu: SRV });
	const ngx = HAVE_NGINX ? await startNginx({ cpu: SRV, workers: 1, upstreamPort: fake.port }) : null;
	const wp = await startWebproxyd({ cpu: SRV, workers: 1, tokens: 64, upstream: fake.url });
	const ps = paths(fake, ngx, wp);
	try {
		if (want('latency')) {
			// The three paths take turns in short windows, the first of
			// each round rotating, so each sees the same machine. This
			// VM has two speeds that switch every few seconds (all
			// paths ~1.7x slower in the slow one; README): a run's p50
			// is the lower quartile of its windows' p50s, the quiet
			// machine's, and its p99 the median of its windows' p99s,
			// every window's tail.
			say('added latency, c=1');
			const msg = '[tokens=50] [nothink] Why is the sky blue?';
			const req = Object.fromEntries(ps.map((x) => [x.name,
				x.grok ? grokRequest(msg) : openaiRequest(msg, false)]));
			const r = R.latency = Object.fromEntries(ps.map((x) => [x.name,
				{ p50: [], p99: [], n: [], bad: 0, windows: [] }]));
			for (let rep = 0; rep < REPS; rep++) {
				const w = Object.fromEntries(ps.map((x) => [x.name, { p50: [], p99: [], n: 0 }]));
				for (let round = 0; round < P.latRounds; round++)
					for (let k = 0; k < ps.length; k++) {
						const x = ps[(round + k) % ps.length];
						const o = await load(x.port, req[x.name], ['-c', 1, '-d', P.latDur, '-w', P.latWarm]);
						w[x.name].p50.push(o.latency_us.p50);
						w[x.name].p99.push(o.latency_us.p99);
						w[x.name].n += o.requests;
						r[x.name].bad += o.incomplete;
						check(o.ok > 0 && o.incomplete === 0, `latency ${x.name}: ${o.ok} answers, ${o.incomplete} bad`);
					}
				for (const x of ps) {
					r[x.name].p50.push(quantile(w[x.name].p50, 0.25));
					r[x.name].p99.push(median(w[x.name].p99));
					r[x.name].n.push(w[x.name].n);
					r[x.name].windows.push(w[x.name].p50);
				}
			}
		}
		if (want('live')) {
			say('streaming liveness, a line every 5 ms');
			const msg = `[tokens=${P.liveLines}] [interval=5] [stamp] [nothink] Count slowly.`;
			const r = R.live = {};
			for (const x of ps) r[x.name] = { p50: [], p99: [], max: [], late5: 0, stall40: 0, frames: 0, bad: 0, streams: 0 };
			for (let rep = 0; rep < REPS; rep++)
				for (const x of ps) {
					const q = x.grok ? grokRequest(msg) : openaiRequest(msg, true);
					const o = await load(x.port, q, ['-c', P.liveConns, '-n', P.liveStreams, '-K', '-t', 60,
						...streamArgs(x, P.liveLines)]);
					const y = r[x.name];
					y.p50.push(o.delay_us.p50);
					y.p99.push(o.delay_us.p99);
					y.max.push(o.delay_us.max);
					y.late5 += o.delay_us.ge5ms;
					y.stall40 += o.gap_us.ge40ms;
					y.frames += o.delay_us.n;
					y.bad += o.requests - o.ok;
					y.streams += o.requests;
					check(o.ok === P.liveStreams && o.delay_us.n === P.liveStreams * P.liveLines,
						`live ${x.name}: ${o.ok}/${P.liveStreams} streams, ${o.delay_us.n} stamped frames`);
				}
		}
	} finally {
		await stop(wp); await stop(ngx); await stop(fake);
	}
}

// Throughput: the proxy has the server CPU to itself (one nginx worker,
// one webproxyd worker); the fake and the load share the other.
async function figThroughput() {
	say('throughput, one worker on one core, c=64');
	const fake = await startFake({ cpu: LOAD });
	const ngx = HAVE_NGINX ? await startNginx({ cpu: SRV, workers: 1, upstreamPort: fake.port }) : null;
	const wp = await startWebproxyd({ cpu: SRV, workers: 1, tokens: 64, upstream: fake.url });
	const ps = paths(fake, ngx, wp);
	const msg = '[tokens=50] [nothink] Why is the sky blue?';
	const r = R.throughput = Object.fromEntries(ps.map((x) => [x.name, { rps: [], cpu: [], p99: [], bad: 0 }]));
	try {
		for (let rep = 0; rep < REPS; rep++)
			for (const x of ps) {
				const q = x.grok ? grokRequest(msg) : openaiRequest(msg, false);
				const c0 = x.name === 'direct' ? 0 : cpuSeconds(x.proc.pid);
				const o = await load(x.port, q, ['-c', P.tputConns, '-d', P.tputDur, '-w', P.tputWarm]);
				const c1 = x.name === 'direct' ? 0 : cpuSeconds(x.proc.pid);
				r[x.name].rps.push(o.rps);
				r[x.name].p99.push(o.latency_us.p99);
				// CPU per request over warm-up and measurement alike.
				if (x.name !== 'direct') r[x.name].cpu.push((c1 - c0) * 1e6 / Math.max(1, o.sent));
				r[x.name].bad += o.incomplete;
				check(o.rps > 0 && o.incomplete === 0, `throughput ${x.name}: ${fmt(o.rps)} req/s, ${o.incomplete} bad`);
			}
	} finally {
		await stop(wp); await stop(ngx); await stop(fake);
	}
}

// 10,000 open streams, one line a second each, 2 workers (nginx: 2).
// The fake runs a thread per connection (-P), so each stream's lines
// leave at their own time: suspended, its streams are resumed on a grid
// and 10,000 of them arrive in bursts of ~150 lines every 16 ms, which
// the floor itself cannot pass in under 5 ms.
async function figStreams() {
	say(`${P.streams} concurrent streams, a line every ${P.streamMs} ms`);
	const msg = `[tokens=${P.streamLines}] [interval=${P.streamMs}] [stamp] [nothink] Tick.`;
	const r = R.streams = {};
	const one = async (x, mk) => {
		const fake = await startFake({ cpu: LOAD, args: ['-M', '8192', '-c', '30000', '-P'] });
		const srv = await mk(fake);
		const proc = srv || fake;
		const peak = { rss: 0, pss: 0, shmem: 0, procs: 0 };
		let sampling = true, pss = 0;
		const sampler = (async () => {
			while (sampling) {
				const m = memory(proc.pid, false);
				if (m.rss > peak.rss) Object.assign(peak, m);
				await sleep(500);
			}
		})();
		// Pss once, a second after the last stream opened: all are open.
		const onLine = (l) => {
			if (/all \d+ requests sent/.test(l))
				setTimeout(() => { if (sampling) pss = memory(proc.pid).pss; }, 1000);
		};
		try {
			const q = x.grok ? grokRequest(msg) : openaiRequest(msg, true);
			const o = await load(srv ? srv.port : fake.port, q, ['-c', P.streams, '-n', P.streams, '-K',
				'-r', P.streamRate, '-t', P.streams / P.streamRate + P.streamLines * P.streamMs / 1000 + 30,
				...streamArgs(x, P.streamLines)], { onLine });
			sampling = false;
			await sampler;
			peak.pss = pss;
			const y = r[x.name] ??= { ok: [], n: P.streams, peakOpen: [], p99: [], max: [], ttfb: [], rss: [], pss: [], shmem: [], procs: 0 };
			y.ok.push(o.ok);
			y.ttfb.push(o.ttfb_us.p99);
			y.peakOpen.push(o.peak_open);
			y.p99.push(o.delay_us.p99);
			y.max.push(o.delay_us.max);
			if (srv) {
				y.rss.push(peak.rss); y.pss.push(peak.pss); y.shmem.push(peak.shmem);
				y.procs = peak.procs;
			}
			check(o.requests === P.streams && o.ok === P.streams,
				`streams ${x.name}: ${o.ok}/${P.streams} complete, peak ${o.peak_open} open`);
		} finally {
			sampling = false;
			await stop(srv); await stop(fake);
		}
	};
	for (let rep = 0; rep < P.streamReps; rep++)
		await one({ name: 'webproxyd', grok: false }, (fake) =>
			startWebproxyd({ cpu: SRV, workers: 2, tokens: 1000, upstream: fake.url }));
	if (HAVE_NGINX)
		await one({ name: 'nginx', grok: true }, (fake) =>
			startNginx({ cpu: SRV, workers: 2, upstreamPort: fake.port }));
	await one({ name: 'direct', grok: true }, async () => null);
}

async function figTokens() {
	say('token pool: pick + charge');
	const r = R.tokens = {};
	for (let rep = 0; rep < REPS; rep++) {
		const p = run('wptok', path.join(BIN, 'wptok'), ['-i', P.tokOps, ...P.tokSizes].map(String));
		const { code } = await p.exited;
		check(code === 0, `wptok exited ${code}`);
		if (code !== 0) return;
		const o = JSON.parse(p.out);
		for (const [n, v] of Object.entries(o)) {
			r[n] ??= { med: [], p99: [], rel: [] };
			r[n].med.push(v.median_us); r[n].p99.push(v.p99_us); r[n].rel.push(v.with_release_us);
		}
	}
	check(Object.keys(r).length === P.tokSizes.length, 'token pool: every size timed');
}

// Start-up with a big token.json: to READY=1, to /healthz, idle memory.
async function figStartup() {
	say(`start-up with ${P.startTokens} tokens`);
	const r = R.startup = {};
	const one = async (n) => {
		const port = await freePort();
		const dir = wpDir({ workers: 2, tokens: n, upstream: 'http://127.0.0.1:9', port,
			maxTokens: Math.max(10000, n) });
		const size = fs.statSync(path.join(dir, 'accounts/grok/token.json')).size;
		const p = run('wpready', path.join(BIN, 'wpready'), ['-p', port, '-t', 30000, '--',
			path.join(BIN, 'webproxyd'), '-f', '-c', path.join(dir, 'config.yaml')].map(String));
		try {
			const o = await until('wpready', () => {
				if (p.exitCode !== null) throw new Error(`wpready exited:\n${p.log}`);
				return p.out.includes('\n') && JSON.parse(p.out);
			}, 40000);
			await sleep(QUICK ? 300 : 1000); // settle: idle is what we want
			const m = memory(o.pid);
			const y = r[n] ??= { ready: [], healthz: [], rss: [], pss: [], shmem: [], procs: 0, size };
			y.ready.push(o.ready_ms); y.healthz.push(o.healthz_ms);
			y.rss.push(m.rss); y.pss.push(m.pss); y.shmem.push(m.shmem); y.procs = m.procs;
			check(o.ready_ms > 0 && o.healthz_ms > 0, `start-up ${n} tokens: READY ${fmt(o.ready_ms, 1)} ms, healthz ${fmt(o.healthz_ms, 1)} ms`);
		} finally {
			await stop(p);
		}
	};
	for (let rep = 0; rep < REPS; rep++) await one(P.startTokens);
	await one(100);
}

// SIGHUP (webproxyd) or SIGHUP (nginx) while streams run.
async function figReload() {
	say(`reload under load, ${P.reloadStreams} streams`);
	const msg = `[tokens=${P.reloadLines}] [interval=${P.reloadMs}] [stamp] [nothink] Keep going.`;
	const r = R.reload = {};
	let reloads = 0;
	const one = async (x, srv) => {
		let sent = false;
		const onLine = (l) => { if (/all \d+ requests sent/.test(l)) sent = true; };
		const q = x.grok ? grokRequest(msg) : openaiRequest(msg, true);
		const loadDone = load(srv.port, q, ['-c', P.reloadStreams, '-n', P.reloadStreams, '-K',
			'-t', P.reloadLines * P.reloadMs / 1000 + 40, ...streamArgs(x, P.reloadLines)], { onLine });
		await until('all streams sent', () => sent, 20000);
		await sleep(P.reloadLines * P.reloadMs / 4); // a quarter in
		// An unchanged config reloads nothing: change a live key, so
		// the workers are replaced as on a real reload.
		if (srv.cfg) wpConfig(srv.dir, srv.cfg, { drain_timeout: 30 + ++reloads });
		const from = srv.log.length;
		process.kill(srv.pid, 'SIGHUP');
		const o = await loadDone;
		const y = r[x.name] ??= { broken: [], n: P.reloadStreams, reloaded: 0 };
		y.broken.push(o.requests - o.ok + (P.reloadStreams - o.requests));
		if (x.name === 'nginx' || /reload: generation/.test(srv.log.slice(from))) y.reloaded++;
		check(o.requests === P.reloadStreams, `reload ${x.name}: ${o.requests} streams settled, ${o.requests - o.ok} broken`);
	};
	const fake = await startFake({ cpu: LOAD });
	try {
		const wp = await startWebproxyd({ cpu: SRV, workers: 2, tokens: 64, upstream: fake.url });
		try {
			for (let rep = 0; rep < REPS; rep++) {
				await one({ name: 'webproxyd', grok: false }, wp);
				// The old workers drain before the next round.
				await until('old workers gone', () => tree(wp.pid).length <= 4 || null, 40000).catch(() => {});
			}
		} finally { await stop(wp); }
		if (HAVE_NGINX) {
			const ngx = await startNginx({ cpu: SRV, workers: 2, upstreamPort: fake.port });
			try { await one({ name: 'nginx', grok: true }, ngx); } finally { await stop(ngx); }
		}
	} finally { await stop(fake); }
}

// ---- the table --------------------------------------------------------

function table() {
	const rows = [];
	const row = (fig, wp, ngx, direct, target, met) =>
		rows.push(`| ${fig} | ${wp} | ${ngx} | ${direct} | ${target} | ${met === undefined ? '' : met ? 'yes' : '**no**'} |`);
	const added = (name, k) => R.latency[name][k].map((v, i) => v - R.latency.direct[k][i]);
	if (R.latency) {
		const w50 = added('webproxyd', 'p50'), n50 = R.latency.nginx ? added('nginx', 'p50') : [];
		const w99 = added('webproxyd', 'p99'), n99 = R.latency.nginx ? added('nginx', 'p99') : [];
		row('added latency, c=1, p50 (non-stream, 50 tokens)', `${plus(fmt(median(w50)))} µs ${spread(w50).replace(/^\S+ ?/, '')}`,
			n50.length ? `${plus(fmt(median(n50)))} µs ${spread(n50).replace(/^\S+ ?/, '')}` : 'n/a',
			`${spread(R.latency.direct.p50)} µs (absolute)`,
			'≤ nginx + 75 µs', n50.length ? median(w50) <= median(n50) + 75 : undefined);
		row('added latency, c=1, p99', `${plus(fmt(median(w99)))} µs ${spread(w99).replace(/^\S+ ?/, '')}`,
			n99.length ? `${plus(fmt(median(n99)))} µs ${spread(n99).replace(/^\S+ ?/, '')}` : 'n/a',
			`${spread(R.latency.direct.p99)} µs (absolute)`, '≤ 500 µs', median(w99) <= 500);
	}
	if (R.live) {
		const L = R.live;
		const cell = (n) => (L[n] ? `${spread(L[n].p99, 0)} µs` : 'n/a');
		row('streaming live, a line every 5 ms: p99 delay line → frame', cell('webproxyd'), cell('nginx'), cell('direct'),
			'≤ 1 ms', median(L.webproxyd.p99) <= 1000);
		const cell2 = (n) => (L[n] ? `${L[n].late5} / ${L[n].stall40}; max ${spread(L[n].max, 0)} µs; ${L[n].streams - L[n].bad}/${L[n].streams} complete` : 'n/a');
		row(`  frames ≥ 5 ms late / gaps ≥ 40 ms (of ${L.webproxyd.frames} frames)`, cell2('webproxyd'), cell2('nginx'), cell2('direct'),
			'0 / 0', L.webproxyd.late5 === 0 && L.webproxyd.stall40 === 0 && L.webproxyd.bad === 0);
	}
	if (R.throughput) {
		const T = R.throughput;
		const cell = (n) => (T[n] ? `${spread(T[n].rps)} req/s` + (T[n].cpu.length ? `; ${fmt(median(T[n].cpu))} µs CPU/req` : '') : 'n/a');
		const ratio = T.nginx ? T.webproxyd.rps.map((v, i) => 100 * v / T.nginx.rps[i]) : [];
		row(`throughput, one worker on one core, c=${P.tputConns} (non-stream, 50 tokens)`,
			`${cell('webproxyd')}; ${ratio.length ? spread(ratio, 0, ' %') + ' of nginx' : ''}`,
			cell('nginx'), `${cell('direct')} (fake shares the load's core)`, '≥ 50 % of nginx',
			ratio.length ? median(ratio) >= 50 : undefined);
	}
	if (R.streams) {
		const S = R.streams;
		const ok = (n) => (S[n] ? `${S[n].ok.join(', ')} of ${S[n].n} complete; peak ${Math.max(...S[n].peakOpen)} open; first byte p99 ${spread(S[n].ttfb.map((v) => v / 1000), 0)} ms` : 'n/a');
		row(`${P.streams} concurrent streams, a line each ${P.streamMs} ms, 2 workers: complete`, ok('webproxyd'), ok('nginx'), ok('direct'),
			'all', S.webproxyd.ok.every((v) => v === P.streams));
		const mem = (n) => (S[n] && S[n].rss.length ? `${spread(S[n].rss, 0)} MiB VmRSS sum (${S[n].procs} processes; shm ${fmt(median(S[n].shmem), 0)} MiB of it); Pss ${spread(S[n].pss, 0)} MiB with all open` : 'n/a');
		row('  total RSS, peak during the run', mem('webproxyd'), mem('nginx'), '—', '≤ 512 MiB',
			median(S.webproxyd.rss) <= 512);
		const d = (n) => (S[n] ? `${spread(S[n].p99, 0)} µs; max ${spread(S[n].max, 0)} µs` : 'n/a');
		row('  p99 frame delay line → frame', d('webproxyd'), d('nginx'), d('direct'), '≤ 5 ms',
			median(S.webproxyd.p99) <= 5000);
	}
	if (R.tokens) {
		const T = R.tokens, ns = Object.keys(T);
		const big = ns[ns.length - 1], small = ns[0];
		const cell = ns.map((n) => `${Number(n).toLocaleString('en')}: ${spread(T[n].med, 2)} µs (p99 ${fmt(median(T[n].p99), 2)}; +release ${fmt(median(T[n].rel), 2)})`).join('<br>');
		// wptok times the sizes in turns, so each run's two figures
		// share the machine's speed: the ratio is taken per run.
		const ratios = T[big].med.map((v, i) => v / T[small].med[i]);
		row('token pool: pick + charge, median per op', `${cell}<br>(${spread(ratios, 1, '×')} from ${Number(small).toLocaleString('en')} to ${Number(big).toLocaleString('en')}, per run; "flat" here: ≤ 2×)`, '—', '—', '≤ 2 µs, flat from 100 to 100,000',
			median(T[big].med) <= 2 && median(ratios) <= 2);
	}
	if (R.startup) {
		const S = R.startup, big = S[P.startTokens], small = S[100];
		row(`start-up, token.json of ${P.startTokens.toLocaleString('en')} tokens (${fmt(big.size / 1048576, 1)} MB), 2 workers`,
			`READY=1 ${spread(big.ready, 0)} ms; /healthz 200 at ${spread(big.healthz, 0)} ms` + (small ? `<br>(100 tokens: READY ${fmt(median(small.ready), 0)} ms, /healthz ${fmt(median(small.healthz), 0)} ms)` : ''),
			'—', '—', 'READY ≤ 300 ms', median(big.ready) <= 300);
		row('  idle memory, master + workers + janitor', `${spread(big.rss, 0)} MiB VmRSS sum (${big.procs} processes; shm ${fmt(median(big.shmem), 0)} MiB of it); Pss ${spread(big.pss, 0)} MiB` +
			(small ? `<br>(100 tokens: ${fmt(median(small.rss), 0)} MiB VmRSS, Pss ${fmt(median(small.pss), 0)} MiB)` : ''),
		'—', '—', 'reported');
	}
	if (R.reload) {
		const X = R.reload;
		const cell = (n) => (X[n] ? `${X[n].broken.join(', ')} broken of ${X[n].n}` + (n === 'webproxyd' ? ` (${X[n].reloaded}/${X[n].broken.length} reloads seen in the log)` : '') : 'n/a');
		row(`reload under load: SIGHUP during ${P.reloadStreams} streams`, cell('webproxyd'), cell('nginx'), '—', '0 broken',
			X.webproxyd.broken.every((v) => v === 0));
	}
	return ['| figure | webproxyd | nginx | direct (floor) | target | met |',
		'|---|---|---|---|---|---|', ...rows].join('\n');
}

function header(t0) {
	const cpu = os.cpus()[0]?.model ?? '?';
	return [`# webproxyd benchmark${QUICK ? ' (quick sanity run)' : ''}`, '',
		`${new Date().toISOString()}; ${NCPU} × ${cpu}; Linux ${os.release()}; ` +
		`${nginxVersion || 'nginx not run'}; ${REPS} runs of each figure ` +
		`(${P.streamReps} of the streams figure for webproxyd, 1 for nginx and direct); ` +
		`${((Date.now() - t0) / 1000).toFixed(0)} s in all.`, '',
		PIN ? 'Pinning: proxies on CPU 0; the load generator on CPU 1; the fake on CPU 0 for latency and liveness, on CPU 1 (with the load) for throughput, streams and reload.'
			: 'Pinning: none (fewer than 2 CPUs or no taskset).', '',
		'Cells: median (min–max) over the runs. Delays are measured from the fake writing a line (a CLOCK_MONOTONIC stamp in the token) to the client reading the frame that carries it. VmRSS sums count shared pages (the shm segment, libraries) once per process; Pss splits them and is the true total.', ''].join('\n');
}

async function main() {
	const t0 = Date.now();
	fs.mkdirSync(BIN, { recursive: true });
	// Copies: others may rebuild build/ while we measure.
	for (const [src, dst] of [['webproxyd', 'webproxyd'], ['fakegrok', 'fakegrok'],
		['bench/wpload', 'wpload'], ['bench/wpready', 'wpready'], ['bench/wptok', 'wptok']])
		fs.copyFileSync(path.join(BUILD, src), path.join(BIN, dst));
	for (const f of fs.readdirSync(BIN)) fs.chmodSync(path.join(BIN, f), 0o755);
	if (!HAVE_NGINX) say('nginx not found: its column stays empty (make bench installs it)');
	if (want('latency') || want('live')) await figLatencyLive();
	if (want('throughput')) await figThroughput();
	if (want('streams')) await figStreams();
	if (want('tokens')) await figTokens();
	if (want('startup')) await figStartup();
	if (want('reload')) await figReload();
	const md = `${header(t0)}\n${table()}\n`;
	fs.mkdirSync(path.dirname(OUT), { recursive: true });
	fs.writeFileSync(OUT, md);
	fs.writeFileSync(OUT.replace(/\.md$/, '.json'), JSON.stringify({ P, R }, null, 1));
	console.log(md);
	console.log(`written to ${OUT}`);
	if (QUICK) {
		for (const [ok, what] of checks) console.log(`${ok ? 'ok' : 'not ok'} - bench: ${what}`);
		const f = checks.filter((c) => !c[0]).length;
		console.log(`${checks.length - f} passed, ${f} failed`);
		process.exitCode = f ? 1 : 0;
	}
}

main().catch((e) => {
	console.error(`bench: ${e.stack || e}`);
	if (QUICK) console.log('0 passed, 1 failed');
	process.exitCode = 1;
}).finally(cleanup);
