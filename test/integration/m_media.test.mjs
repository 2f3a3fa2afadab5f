// Images, video and the media cache (issue 4), end to end against the fake
// grok.com: input images by URL (from a test server on 127.0.0.2, the one
// address the config allows), data: URI and bare base64, checked at the
// fake's upload endpoint; the SSRF refusals; generated images in url and
// base64 modes, streamed and not; image-to-video with its upload, media
// post and videoGen payload; the /images routes (byte-identical files,
// Range, no traversal); absolute links from Host, base_url and trusted
// proxies only; the janitor trimming the cache oldest first, woken by a
// download and by a reload; /v1/images/generations through the openai
// SDK; and an unwritable cache folder. Loopback only.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { after, before, describe, test } from 'node:test';

import { sleep, sseEvents, startWithFake, tokenFile } from './lib.mjs';

const TOK = 'tok-media-1';
const HEX_NAME = /^[0-9a-f]{32}\.(jpg|png|webp|gif|mp4|webm)$/;

// ---- small helpers of this file -------------------------------------------

function crc32(buf) {
	let c, crc = 0xffffffff;
	for (const b of buf) {
		c = (crc ^ b) & 0xff;
		for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
		crc = (crc >>> 8) ^ c;
	}
	return (crc ^ 0xffffffff) >>> 0;
}
function pngChunk(type, data) {
	const len = Buffer.alloc(4);
	len.writeUInt32BE(data.length);
	const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
	const crc = Buffer.alloc(4);
	crc.writeUInt32BE(crc32(td));
	return Buffer.concat([len, td, crc]);
}
// A real PNG (RGB, w x h) whose pixels depend on seed, so each differs.
function makePng(w, h, seed) {
	const ihdr = Buffer.alloc(13);
	ihdr.writeUInt32BE(w, 0);
	ihdr.writeUInt32BE(h, 4);
	ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
	const rows = Buffer.alloc((w * 3 + 1) * h);
	for (let y = 0; y < h; y++)
		for (let x = 0; x < w * 3; x++)
			rows[y * (w * 3 + 1) + 1 + x] = (x * 7 + y * 13 + seed * 31) & 0xff;
	return Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'),
		pngChunk('IHDR', ihdr), pngChunk('IDAT', zlib.deflateSync(rows)),
		pngChunk('IEND', Buffer.alloc(0))]);
}

// One request on a fresh connection, the path sent exactly as given (no
// URL normalisation, so "../" reaches the server). Resolves { status,
// headers, buf, body, json, ms }.
function raw(base, p, { method = 'GET', headers = {}, body, localAddress,
	timeoutMs = 15000 } = {}) {
	const u = new URL(base);
	const t0 = Date.now();
	return new Promise((resolve, reject) => {
		const req = http.request({ hostname: u.hostname, port: u.port, path: p,
			method, headers, agent: false, localAddress }, (res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.on('end', () => {
				const buf = Buffer.concat(chunks);
				let json;
				try { json = JSON.parse(buf.toString()); } catch { json = undefined; }
				resolve({ status: res.statusCode, headers: res.headers, buf,
					body: buf.toString(), json, ms: Date.now() - t0 });
			});
			res.on('error', reject);
		});
		req.on('error', reject);
		req.setTimeout(timeoutMs, () =>
			req.destroy(new Error(`${method} ${p}: no answer in ${timeoutMs} ms`)));
		if (body !== undefined) req.write(body);
		req.end();
	});
}

function post(d, p, body, opts = {}) {
	return raw(d.url(''), p, { ...opts, method: 'POST',
		headers: { 'content-type': 'application/json', ...(opts.headers || {}) },
		body: JSON.stringify(body) });
}

// A chat with one user message (text, or text and images).
function userMsg(text, images = []) {
	if (!images.length) return [{ role: 'user', content: text }];
	return [{ role: 'user', content: [{ type: 'text', text },
		...images.map((url) => ({ type: 'image_url', image_url: { url } }))] }];
}

// A streamed answer: its events, the joined content, whether it ended
// with [DONE] (and nothing after).
function streamed(r) {
	assert.equal(r.status, 200, r.body);
	assert.match(r.headers['content-type'], /^text\/event-stream/);
	const ev = sseEvents(r.body);
	const content = ev.filter((e) => e !== '[DONE]')
		.map((e) => e.choices?.[0]?.delta?.content ?? '').join('');
	return { ev, content, done: ev.at(-1) === '[DONE]' };
}

function nonStreamed(r) {
	assert.equal(r.status, 200, r.body);
	assert.equal(r.json.object, 'chat.completion');
	return r.json.choices[0].message.content;
}

// Markdown image links and video tags in a text.
const imageLinks = (t) => [...t.matchAll(/!\[image\]\(([^)]+)\)/g)].map((m) => m[1]);
const videoLinks = (t) =>
	[...t.matchAll(/<video src="([^"]+)" controls="controls"><\/video>/g)].map((m) => m[1]);

// Records at the fake, by path prefix.
async function recs(fake, prefix) {
	return (await fake.requests(`?path=${encodeURIComponent(prefix)}`)) || [];
}
async function forget(fake) {
	await raw(fake.url, '/__fake/requests', { method: 'DELETE' });
}
// An asset straight from the fake, with (or without) the owner's cookie.
function fakeAsset(fake, rel, token = TOK) {
	return raw(fake.url, `/${rel}`, { headers: token ? { cookie: `sso=${token}` } : {} });
}

function cacheDir(d, kind) { return path.join(d.dir, 'data/temp', kind); }
function cacheFiles(d, kind) {
	try { return fs.readdirSync(cacheDir(d, kind)).sort(); } catch { return []; }
}

// Stop a daemon (and its fake) and remove its data folder.
async function stopAndClean(d) {
	if (!d) return;
	await d.stop();
	fs.rmSync(d.dir, { recursive: true, force: true });
}

async function poll(fn, ms, what) {
	const t0 = Date.now();
	let last;
	for (;;) {
		last = await fn();
		if (last) return last;
		if (Date.now() - t0 > ms)
			throw new Error(`${what}: not within ${ms} ms (last ${JSON.stringify(last)})`);
		await sleep(25);
	}
}

// The link's file, served by the daemon, is byte for byte the asset the
// daemon fetched from the fake (asked for again here with the cookie).
// The fake's synthetic JPEG and MP4 carry their own path inside, which
// pairs each file with its asset. Returns the asset paths.
async function assertServedAsAssets(d, links, base) {
	const assets = (await recs(d.fake, '/users/')).filter((r) => r.status === 200)
		.map((r) => r.path.slice(1));
	const seen = [];
	for (const link of links) {
		assert.ok(link.startsWith(`${base}/images/`), `${link} is not under ${base}/images/`);
		const p = new URL(link).pathname;
		assert.match(path.basename(p), HEX_NAME);
		const got = await raw(d.url(''), p);
		assert.equal(got.status, 200, `${p}: ${got.body}`);
		const src = assets.find((a) => got.buf.includes(Buffer.from(a)));
		assert.ok(src, `${p} matches no asset the daemon fetched (${assets})`);
		const want = await fakeAsset(d.fake, src);
		assert.equal(want.status, 200);
		assert.ok(got.buf.equals(want.buf), `${p} differs from the fake's ${src}`);
		assert.equal(got.headers['content-type'], want.headers['content-type']);
		assert.equal(Number(got.headers['content-length']), want.buf.length);
		seen.push(src);
	}
	assert.equal(new Set(seen).size, links.length, 'two links, one asset');
	return seen;
}

// ---- the test image server (127.0.0.2) and a loopback decoy (127.0.0.1) ---

const PNG = makePng(16, 12, 1);
const PNG2 = makePng(9, 7, 2);
let imgSrv, decoy, decoyHits = 0;

function listen(server, host) {
	return new Promise((ok, fail) => {
		server.once('error', fail);
		server.listen(0, host, () => ok(server.address().port));
	});
}

before(async () => {
	// The decoy answers with a valid PNG: if it were ever reached, the
	// request would succeed, so a refusal can only come from the check.
	decoy = http.createServer((req, res) => {
		res.writeHead(200, { 'content-type': 'image/png' });
		res.end(PNG);
	});
	decoy.on('connection', () => { decoyHits++; });
	decoy.port = await listen(decoy, '127.0.0.1');
	imgSrv = http.createServer((req, res) => {
		if (req.url === '/cat.png') {
			res.writeHead(200, { 'content-type': 'image/png' });
			res.end(PNG);
		} else if (req.url === '/second.png') {
			res.writeHead(200, { 'content-type': 'image/png' });
			res.end(PNG2);
		} else if (req.url === '/to-loopback') {
			res.writeHead(302, { location: `http://127.0.0.1:${decoy.port}/cat.png` });
			res.end();
		} else if (req.url === '/to-localhost') {
			res.writeHead(302, { location: `http://localhost:${decoy.port}/cat.png` });
			res.end();
		} else if (req.url === '/huge.png') {
			// A PNG header and 21 MiB: over the 20 MiB cap.
			res.writeHead(200, { 'content-type': 'image/png' });
			res.write(PNG.subarray(0, 33));
			res.end(Buffer.alloc(21 << 20));
		} else if (req.url === '/text') {
			res.writeHead(200, { 'content-type': 'text/plain' });
			res.end('not an image at all');
		} else {
			res.writeHead(404);
			res.end();
		}
	});
	imgSrv.port = await listen(imgSrv, '127.0.0.2');
});

after(async () => {
	await new Promise((ok) => imgSrv.close(ok));
	await new Promise((ok) => decoy.close(ok));
});

// ---- input images --------------------------------------------------------

describe('input images', () => {
	let d;
	before(async () => {
		d = await startWithFake({ tokens: tokenFile([TOK]),
			grok: { image_fetch_allow: ['127.0.0.2/32'] } });
	});
	after(async () => { await stopAndClean(d); });

	// The upload the fake got, its bytes (fetched back from the fake) and
	// the chat payload that attached it.
	async function checkUploaded(bytes, mime) {
		const ups = await recs(d.fake, '/rest/app-chat/upload-file');
		assert.equal(ups.length, 1, JSON.stringify(ups));
		assert.equal(ups[0].status, 200, ups[0].note);
		assert.equal(ups[0].token, TOK);
		assert.equal(ups[0].body.fileMimeType, mime);
		assert.match(ups[0].body.fileName, /^[\w.-]+$/);
		assert.ok(Buffer.from(ups[0].body.content, 'base64').equals(bytes),
			'the upload carried other bytes');
		const kept = (await raw(d.fake.url, '/__fake/uploads')).json;
		const mine = kept.at(-1);
		const stored = await fakeAsset(d.fake, mine.fileUri);
		assert.ok(stored.buf.equals(bytes));
		const id = mine.fileUri.split('/')[2];
		const chats = await recs(d.fake, '/rest/app-chat/conversations/new');
		assert.equal(chats.length, 1);
		assert.deepEqual(chats[0].body.fileAttachments, [id]);
		assert.equal(chats[0].body.toolOverrides?.videoGen, undefined);
		return chats[0];
	}

	test('by URL from an allowed address: fetched, uploaded, attached', async () => {
		await forget(d.fake);
		const r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
			messages: userMsg('What is in this picture? [echo]',
				[`http://127.0.0.2:${imgSrv.port}/cat.png`]) });
		const content = nonStreamed(r);
		const c = await checkUploaded(PNG, 'image/png');
		assert.match(c.body.message, /What is in this picture/);
		assert.match(content, /What is in this picture/);
	});

	test('by data: URI', async () => {
		await forget(d.fake);
		const r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
			stream: true, messages: userMsg('Describe it',
				[`data:image/png;base64,${PNG2.toString('base64')}`]) });
		assert.ok(streamed(r).done);
		await checkUploaded(PNG2, 'image/png');
	});

	test('by bare base64', async () => {
		await forget(d.fake);
		const r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
			messages: userMsg('Describe it', [PNG.toString('base64')]) });
		nonStreamed(r);
		await checkUploaded(PNG, 'image/png');
	});

	// Each refusal: a 400 that names the image, quickly (nothing waited on
	// a connection), nothing uploaded, no chat, the decoy never touched.
	async function refused(urls, which = 1) {
		await forget(d.fake);
		const hits = decoyHits;
		const r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
			messages: userMsg('Describe it', urls) }, { timeoutMs: 4000 });
		assert.equal(r.status, 400, `${urls}: ${r.body}`);
		assert.equal(r.json.error.code, 'invalid_image');
		assert.match(r.json.error.message, new RegExp(`image ${which}\\b`));
		assert.ok(r.ms < 2500, `${urls}: took ${r.ms} ms`);
		assert.equal(decoyHits, hits, `${urls}: the loopback decoy was reached`);
		assert.equal((await recs(d.fake, '/rest/')).length, 0, 'grok.com was called');
		return r.json.error.message;
	}

	test('SSRF: loopback, private, link-local and metadata addresses are refused', async () => {
		const p = decoy.port;
		assert.match(await refused([`http://127.0.0.1:${p}/cat.png`]), /127\.0\.0\.1/);
		assert.match(await refused(['http://10.0.0.1/cat.png']), /10\.0\.0\.1/);
		assert.match(await refused(['http://169.254.169.254/latest/meta-data/']),
			/169\.254\.169\.254/);
		await refused([`http://[::1]:${p}/cat.png`]);
		await refused([`http://[::ffff:127.0.0.1]:${p}/cat.png`]);
		await refused([`http://2130706433:${p}/cat.png`]); // 127.0.0.1 as a number
		await refused([`http://0.0.0.0:${p}/cat.png`]);
		await refused(['http://192.168.1.1/x.png', 'http://172.16.0.1/x.png']);
	});

	test('SSRF: a name that resolves to loopback is refused', async () => {
		assert.match(await refused([`http://localhost:${decoy.port}/cat.png`]),
			/127\.0\.0\.1|::1/);
	});

	test('SSRF: a redirect from the allowed server to loopback is refused', async () => {
		await refused([`http://127.0.0.2:${imgSrv.port}/to-loopback`]);
		await refused([`http://127.0.0.2:${imgSrv.port}/to-localhost`]);
	});

	test('the refusal names the image that failed, not the first', async () => {
		await refused([`http://127.0.0.2:${imgSrv.port}/cat.png`,
			`http://127.0.0.1:${decoy.port}/cat.png`], 2);
	});

	test('not an image, a 404, a bad data: URI: a 400 naming the image', async () => {
		for (const u of [`http://127.0.0.2:${imgSrv.port}/text`,
			`http://127.0.0.2:${imgSrv.port}/missing.png`,
			`http://127.0.0.2:${imgSrv.port}/huge.png`,
			'data:image/png,notbase64', 'data:image/png;base64,!!!!', 'ftp://127.0.0.2/x.png']) {
			await forget(d.fake);
			const r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
				messages: userMsg('Describe it', [u]) }, { timeoutMs: 4000 });
			assert.equal(r.status, 400, `${u}: ${r.body}`);
			assert.match(r.json.error.message, /image 1\b/, u);
			assert.equal((await recs(d.fake, '/rest/app-chat/')).length, 0, u);
		}
	});
});

// ---- generated images, video, links and serving ---------------------------

describe('generated media (image_mode url)', () => {
	let d;
	before(async () => {
		d = await startWithFake({ tokens: tokenFile([TOK]),
			server: { trusted_proxies: ['127.0.0.2/32'] } });
	});
	after(async () => { await stopAndClean(d); });
	const base = () => `http://127.0.0.1:${d.port}`;

	test('stream: text, image links, [DONE]; files cached and served byte-identical', async () => {
		await forget(d.fake);
		const r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
			stream: true, messages: userMsg('Draw a red fox in the snow') });
		const s = streamed(r);
		assert.ok(s.done, 'no [DONE] at the end');
		assert.equal(s.ev.filter((e) => e === '[DONE]').length, 1);
		assert.match(s.content, /Here is what I drew for you\./);
		const links = imageLinks(s.content);
		assert.equal(links.length, 2, s.content);
		const fin = s.ev.filter((e) => e !== '[DONE]' && e.choices?.[0]?.finish_reason);
		assert.equal(fin.length, 1);
		assert.equal(fin[0].choices[0].finish_reason, 'stop');
		const files = cacheFiles(d, 'image');
		for (const l of links) assert.ok(files.includes(path.basename(l)), `${l} not in ${files}`);
		assert.ok(files.every((f) => HEX_NAME.test(f)), `stray files: ${files}`);
		await assertServedAsAssets(d, links, base());
	});

	// The image progress comes after the answer's first words (example C
	// of the reference): a <think> block can only lead the content, so it
	// goes to the reasoning_content field, which has no such order.
	test('stream: the image progress goes to reasoning_content', async () => {
		const r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
			stream: true, reasoning_format: 'reasoning_content',
			messages: userMsg('Draw a lighthouse') });
		const s = streamed(r);
		assert.ok(s.done);
		const reasoning = s.ev.filter((e) => e !== '[DONE]')
			.map((e) => e.choices?.[0]?.delta?.reasoning_content ?? '').join('');
		for (const p of ['Generating image 1: 50%', 'Generating image 2: 100%'])
			assert.ok(reasoning.includes(p), `no "${p}" in the reasoning: ${reasoning}`);
		assert.doesNotMatch(s.content, /Generating image|<think>/);
		assert.equal(imageLinks(s.content).length, 2);
	});

	test('non-stream: the same links, absolute, files served', async () => {
		await forget(d.fake);
		const r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
			messages: userMsg('Can you make an image of a lighthouse? [images=3]') });
		const content = nonStreamed(r);
		assert.match(content, /Here is what I drew for you\./);
		const links = imageLinks(content);
		assert.equal(links.length, 3, content);
		await assertServedAsAssets(d, links, base());
		assert.ok(Number.isInteger(r.json.usage.total_tokens));
	});

	test('PNG assets keep their type', async () => {
		await forget(d.fake);
		const r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
			messages: userMsg('[image] [images=1] [png] a square') });
		const links = imageLinks(nonStreamed(r));
		assert.equal(links.length, 1);
		assert.match(links[0], /\.png$/);
		await assertServedAsAssets(d, links, base());
		const got = await raw(d.url(''), new URL(links[0]).pathname);
		assert.equal(got.headers['content-type'], 'image/png');
	});

	test('links are built from the Host header when base_url is empty', async () => {
		const r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
			messages: userMsg('Draw a boat') },
		{ headers: { host: 'api.example.com:8443' } });
		const links = imageLinks(nonStreamed(r));
		assert.equal(links.length, 2);
		for (const l of links) assert.match(l, /^http:\/\/api\.example\.com:8443\/images\/image\/[0-9a-f]{32}\.jpg$/);
	});

	test('X-Forwarded-Proto/Host only from a trusted proxy', async () => {
		const fwd = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'pub.example.com' };
		// 127.0.0.2 is listed in server.trusted_proxies.
		let r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
			messages: userMsg('Draw a boat [images=1]') },
		{ headers: { host: 'inner:1', ...fwd }, localAddress: '127.0.0.2' });
		let links = imageLinks(nonStreamed(r));
		assert.equal(links.length, 1);
		assert.match(links[0], /^https:\/\/pub\.example\.com\/images\/image\//);
		// 127.0.0.1 is not: the headers are ignored, Host is used.
		r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
			messages: userMsg('Draw a boat [images=1]') },
		{ headers: { host: 'inner:1', ...fwd } });
		links = imageLinks(nonStreamed(r));
		assert.match(links[0], /^http:\/\/inner:1\/images\/image\//);
	});

	test('a Host header that is not a host name is not put into links', async () => {
		const r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
			messages: userMsg('Draw a boat [images=1]') },
		{ headers: { host: 'evil.example)"<x>' } });
		if (r.status === 200)
			assert.doesNotMatch(nonStreamed(r), /evil/);
		else
			assert.equal(r.status, 400, r.body);
	});

	test('text-only grok-imagine-0.9 generates images (no videoGen)', async () => {
		await forget(d.fake);
		const r = await post(d, '/v1/chat/completions', { model: 'grok-imagine-0.9',
			stream: true, messages: userMsg('Draw a cat on a sofa') });
		const s = streamed(r);
		assert.ok(s.done);
		const links = imageLinks(s.content);
		assert.equal(links.length, 2, s.content);
		assert.equal(s.ev[0].model, 'grok-imagine-0.9');
		const [c] = await recs(d.fake, '/rest/app-chat/conversations/new');
		assert.equal(c.body.toolOverrides?.videoGen, undefined);
		assert.equal(c.body.modelName, 'grok-3');
		assert.equal((await recs(d.fake, '/rest/media/')).length, 0);
		await assertServedAsAssets(d, links, base());
	});

	let videoPath; // the served video, for the Range tests
	let videoBytes;

	test('video: upload, media post, videoGen payload, progress, <video> link', async () => {
		await forget(d.fake);
		const r = await post(d, '/v1/chat/completions', { model: 'grok-imagine-0.9',
			stream: true, messages: userMsg('make the fox run',
				[`data:image/png;base64,${PNG.toString('base64')}`]) });
		const s = streamed(r);
		assert.ok(s.done, 'no [DONE]');
		// The calls, in order: upload, post, chat (then the video download
		// and a quota refresh).
		const all = (await d.fake.requests()).map((x) => x.route);
		assert.deepEqual(all.filter((x) => x !== 'assets' && x !== '/rest/rate-limits'),
			['/rest/app-chat/upload-file', '/rest/media/post/create',
				'/rest/app-chat/conversations/new'], all.join());
		const [up] = await recs(d.fake, '/rest/app-chat/upload-file');
		assert.ok(Buffer.from(up.body.content, 'base64').equals(PNG));
		const kept = (await raw(d.fake.url, '/__fake/uploads')).json.at(-1);
		const [pst] = await recs(d.fake, '/rest/media/post/create');
		assert.equal(pst.status, 200, pst.note);
		assert.equal(pst.body.mediaType ?? pst.body.media_type, 'MEDIA_POST_TYPE_IMAGE');
		assert.equal(pst.body.mediaUrl ?? pst.body.media_url, `${d.fake.url}/${kept.fileUri}`);
		const [c] = await recs(d.fake, '/rest/app-chat/conversations/new');
		assert.equal(c.status, 200, c.note);
		assert.equal(c.note, 'video');
		assert.deepEqual(c.body.toolOverrides, { videoGen: true });
		assert.deepEqual(c.body.fileAttachments, [kept.fileUri.split('/')[2]]);
		assert.equal(c.body.temporary, true);
		assert.equal(c.body.modelName, 'grok-3');
		const m = c.body.message.match(/^https:\/\/grok\.com\/imagine\/([0-9a-f-]{36}) {2}(.*) --mode=custom$/);
		assert.ok(m, `message shape: ${JSON.stringify(c.body.message)}`);
		assert.equal(m[2], 'make the fox run');
		assert.match(c.headers.referer || '', new RegExp(`/imagine/${m[1]}$`));
		// What the client saw: progress in the thinking, then the tag.
		const think = s.content.match(/<think>([\s\S]*?)<\/think>/);
		assert.ok(think, s.content);
		assert.match(think[1], /Generating video: 45%/);
		assert.match(think[1], /Generating video: 100%/);
		const vids = videoLinks(s.content);
		assert.equal(vids.length, 1, s.content);
		assert.match(vids[0], new RegExp(`^${base()}/images/video/[0-9a-f]{32}\\.mp4$`));
		assert.ok(cacheFiles(d, 'video').includes(path.basename(vids[0])));
		const [src] = await assertServedAsAssets(d, vids, base());
		assert.match(src, /generated_video\.mp4$/);
		videoPath = new URL(vids[0]).pathname;
		videoBytes = (await fakeAsset(d.fake, src)).buf;
	});

	test('video, non-stream, two images: the first becomes the video', async () => {
		await forget(d.fake);
		const content = nonStreamed(await post(d, '/v1/chat/completions', {
			model: 'grok-imagine-0.9', messages: userMsg('spin slowly',
				[`data:image/png;base64,${PNG2.toString('base64')}`,
					PNG.toString('base64')]) }));
		const v = videoLinks(content);
		assert.equal(v.length, 1, content);
		assert.equal((await raw(d.url(''), new URL(v[0]).pathname)).status, 200);
		const [c] = await recs(d.fake, '/rest/app-chat/conversations/new');
		assert.equal(c.body.fileAttachments.length, 1);
		const first = (await raw(d.fake.url, '/__fake/uploads')).json
			.find((u) => u.fileUri.split('/')[2] === c.body.fileAttachments[0]);
		assert.ok((await fakeAsset(d.fake, first.fileUri)).buf.equals(PNG2));
	});

	test('video Range requests: 206 with the right bytes, 416 past the end', async () => {
		assert.ok(videoPath, 'the video test did not run');
		const size = videoBytes.length;
		assert.ok(size > 40);
		let r = await raw(d.url(''), videoPath, { headers: { range: 'bytes=10-29' } });
		assert.equal(r.status, 206);
		assert.equal(r.headers['content-range'], `bytes 10-29/${size}`);
		assert.equal(Number(r.headers['content-length']), 20);
		assert.ok(r.buf.equals(videoBytes.subarray(10, 30)));
		assert.equal(r.headers['content-type'], 'video/mp4');
		r = await raw(d.url(''), videoPath, { headers: { range: 'bytes=-8' } });
		assert.equal(r.status, 206);
		assert.equal(r.headers['content-range'], `bytes ${size - 8}-${size - 1}/${size}`);
		assert.ok(r.buf.equals(videoBytes.subarray(size - 8)));
		r = await raw(d.url(''), videoPath, { headers: { range: `bytes=5-` } });
		assert.equal(r.status, 206);
		assert.ok(r.buf.equals(videoBytes.subarray(5)));
		r = await raw(d.url(''), videoPath, { headers: { range: `bytes=${size}-` } });
		assert.equal(r.status, 416);
		assert.equal(r.headers['content-range'], `bytes */${size}`);
		r = await raw(d.url(''), videoPath, { headers: { range: `bytes=${size + 100}-${size + 200}` } });
		assert.equal(r.status, 416);
		r = await raw(d.url(''), videoPath);
		assert.equal(r.status, 200);
		assert.equal(r.headers['accept-ranges'], 'bytes');
		assert.match(r.headers['cache-control'] || '', /max-age/);
		assert.ok(r.buf.equals(videoBytes));
		r = await raw(d.url(''), videoPath, { method: 'HEAD' });
		assert.equal(r.status, 200);
		assert.equal(Number(r.headers['content-length']), size);
		assert.equal(r.buf.length, 0);
	});

	test('traversal and names we did not make: 404 JSON', async () => {
		const img = cacheFiles(d, 'image').find((f) => f.endsWith('.jpg'));
		const vid = cacheFiles(d, 'video').find((f) => f.endsWith('.mp4'));
		assert.ok(img && vid, 'the generation tests left no files');
		const dir = cacheDir(d, 'image');
		const hex = img.slice(0, 32);
		// Files that exist on disk under names the daemon never makes.
		const planted = 'ab'.repeat(16) + '.jpg';
		fs.symlinkSync(path.join(d.dir, 'accounts/grok/token.json'), path.join(dir, planted));
		fs.copyFileSync(path.join(dir, img), path.join(dir, hex.toUpperCase() + '.jpg'));
		fs.copyFileSync(path.join(dir, img), path.join(dir, `${img}.txt`));
		fs.copyFileSync(path.join(dir, img), path.join(dir, `${hex}.JPG`));
		fs.copyFileSync(path.join(dir, img), path.join(dir, `${hex}.jpeg`));
		fs.copyFileSync(path.join(dir, img), path.join(dir, `${hex.slice(0, 31)}.jpg`));
		const bad = [
			'/images/image/../../token.json',
			'/images/image/../../accounts/grok/token.json',
			'/images/image/%2e%2e/%2e%2e/accounts/grok/token.json',
			'/images/image/%2E%2E%2F%2E%2E%2Faccounts%2Fgrok%2Ftoken.json',
			'/images/image/..%2f..%2faccounts%2fgrok%2ftoken.json',
			'/images/image/....//....//accounts/grok/token.json',
			`/images/video/${img}`, // a real image asked for as a video
			`/images/image/${vid}`, // and a real video as an image
			`/images/image/${planted}`, // a symlink to token.json
			`/images/image/${hex.toUpperCase()}.jpg`,
			`/images/image/${img}.txt`,
			`/images/image/${hex}.JPG`,
			`/images/image/${hex}.jpeg`,
			`/images/image/${hex.slice(0, 31)}.jpg`,
			`/images/image/${img}/`,
			`/images/image/%2e${img}`,
			`/images/image//${img}`,
			`/images/image/./${img}`,
			`/images/${img}`,
			`/images/image/`,
			`/images/image`,
			'/images/image/.tmp-AAAAAA',
		];
		for (const p of bad) {
			const r = await raw(d.url(''), p);
			assert.equal(r.status, 404, `${p}: ${r.status} ${r.body.slice(0, 200)}`);
			assert.ok(r.json?.error, `${p}: not a JSON error: ${r.body.slice(0, 200)}`);
			assert.doesNotMatch(r.body, new RegExp(TOK), `${p} leaked token.json`);
		}
		// The real one still opens.
		assert.equal((await raw(d.url(''), `/images/image/${img}`)).status, 200);
		for (const f of [planted, hex.toUpperCase() + '.jpg', `${img}.txt`, `${hex}.JPG`,
			`${hex}.jpeg`, `${hex.slice(0, 31)}.jpg`])
			fs.rmSync(path.join(dir, f));
	});

	test('a NUL in the name does not cut it short to a valid one', async () => {
		const img = cacheFiles(d, 'image').find((f) => f.endsWith('.jpg'));
		assert.ok(img);
		for (const p of [`/images/image/${img}%00.txt`, `/images/image/${img}%00/../x`]) {
			const r = await raw(d.url(''), p);
			assert.equal(r.status, 404, `${p}: ${r.status}`);
		}
	});

	test('assets need the owner\'s cookie at the fake (a check of the fake itself)', async () => {
		const [a] = (await recs(d.fake, '/users/')).filter((x) => x.status === 200);
		assert.ok(a);
		assert.equal(a.token, TOK);
		assert.equal((await fakeAsset(d.fake, a.path.slice(1), null)).status, 403);
		assert.equal((await fakeAsset(d.fake, a.path.slice(1), 'someone-else')).status, 403);
		assert.equal((await fakeAsset(d.fake, a.path.slice(1))).status, 200);
	});
});

describe('generated media (image_mode base64, base_url set)', () => {
	let d;
	const BASE = 'https://media.example.org/wp';
	before(async () => {
		d = await startWithFake({ tokens: tokenFile([TOK]),
			grok: { image_mode: 'base64', base_url: BASE } });
	});
	after(async () => { await stopAndClean(d); });

	async function checkDataUris(content) {
		const uris = imageLinks(content);
		assert.equal(uris.length, 2, content.slice(0, 500));
		const assets = (await recs(d.fake, '/users/')).filter((r) => r.status === 200)
			.map((r) => r.path.slice(1));
		for (const u of uris) {
			const m = u.match(/^data:image\/jpeg;base64,([A-Za-z0-9+/=]+)$/);
			assert.ok(m, u.slice(0, 100));
			const bytes = Buffer.from(m[1], 'base64');
			const src = assets.find((a) => bytes.includes(Buffer.from(a)));
			assert.ok(src, 'a data: URI of no fetched asset');
			assert.ok(bytes.equals((await fakeAsset(d.fake, src)).buf));
		}
		// base64 answers keep nothing in the cache.
		assert.deepEqual(cacheFiles(d, 'image'), []);
	}

	test('stream: data: URIs of the assets, [DONE]', async () => {
		await forget(d.fake);
		const s = streamed(await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
			stream: true, messages: userMsg('Draw a red fox') }));
		assert.ok(s.done);
		await checkDataUris(s.content);
	});

	test('non-stream: data: URIs of the assets', async () => {
		await forget(d.fake);
		await checkDataUris(nonStreamed(await post(d, '/v1/chat/completions', {
			model: 'grok-3-fast', messages: userMsg('picture of a red fox') })));
	});

	test('video links are built from base_url', async () => {
		const s = streamed(await post(d, '/v1/chat/completions', { model: 'grok-imagine-0.9',
			stream: true, messages: userMsg('wave', [PNG2.toString('base64')]) },
		{ headers: { host: 'ignored.example' } }));
		assert.ok(s.done);
		const v = videoLinks(s.content);
		assert.equal(v.length, 1, s.content);
		assert.match(v[0], /^https:\/\/media\.example\.org\/wp\/images\/video\/[0-9a-f]{32}\.mp4$/);
		// The file is there under that name.
		assert.equal((await raw(d.url(''), `/images/video/${path.basename(v[0])}`)).status, 200);
	});
});

// ---- a retry on another token uploads again for that account ------------

describe('input images and a token that fails', () => {
	const BAD = 'fault-429-media';
	let d;
	before(async () => {
		d = await startWithFake({ tokens: tokenFile([TOK, BAD]) });
	});
	after(async () => { await stopAndClean(d); });

	test('file ids are never sent with another account\'s cookie', async () => {
		// The tokens take turns; the faulty one answers 429, and the retry
		// on the other token must upload the image again for its account
		// (the fake answers 400 to a file id of another account).
		for (let i = 0; i < 3; i++) {
			const r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
				messages: userMsg('Describe it', [PNG.toString('base64')]) });
			nonStreamed(r);
		}
		const chats = await recs(d.fake, '/rest/app-chat/conversations/new');
		const ups = await recs(d.fake, '/rest/app-chat/upload-file');
		assert.ok(chats.some((c) => c.token === BAD && c.status === 429),
			'the faulty token was never tried: the test proves nothing');
		assert.ok(ups.some((u) => u.token === BAD), 'no upload with the faulty token');
		for (const c of chats) assert.notEqual(c.status, 400, c.note);
		assert.equal(chats.filter((c) => c.status === 200).length, 3);
	});
});

// ---- /v1/images/generations through the official SDK ---------------------

const SDK_PATH = path.resolve(import.meta.dirname, '../client/node_modules/openai/index.mjs');
const haveSdk = fs.existsSync(SDK_PATH);

describe('/v1/images/generations (openai SDK images.generate)', () => {
	let d, client;
	before(async () => {
		d = await startWithFake({ tokens: tokenFile([TOK]) });
		if (haveSdk) {
			const { default: OpenAI } = await import(SDK_PATH);
			client = new OpenAI({ baseURL: d.url('/v1'), apiKey: 'sk-unused',
				maxRetries: 0, timeout: 15000 });
		}
	});
	after(async () => { await stopAndClean(d); });

	test('url: n images, links that open to the asset bytes', { skip: !haveSdk && 'no openai SDK in test/client' }, async () => {
		await forget(d.fake);
		const r = await client.images.generate({ prompt: 'Draw a red fox in the snow',
			n: 2, response_format: 'url' });
		assert.ok(Number.isInteger(r.created));
		assert.equal(r.data.length, 2);
		await assertServedAsAssets(d, r.data.map((x) => x.url), `http://127.0.0.1:${d.port}`);
	});

	test('b64_json: the asset bytes, nothing left in the cache', { skip: !haveSdk && 'no openai SDK in test/client' }, async () => {
		await forget(d.fake);
		const r = await client.images.generate({ prompt: 'Draw a red fox in the snow',
			n: 1, response_format: 'b64_json' });
		assert.equal(r.data.length, 1);
		const bytes = Buffer.from(r.data[0].b64_json, 'base64');
		const assets = (await recs(d.fake, '/users/')).filter((x) => x.status === 200)
			.map((x) => x.path.slice(1));
		const src = assets.find((a) => bytes.includes(Buffer.from(a)));
		assert.ok(src);
		assert.ok(bytes.equals((await fakeAsset(d.fake, src)).buf));
		assert.equal(r.data[0].url, undefined);
		// The file it came from was removed after encoding.
		await poll(() => cacheFiles(d, 'image').length === 0 ||
			cacheFiles(d, 'image').every((f) => !bytes.equals(fs.readFileSync(path.join(cacheDir(d, 'image'), f)))),
		1000, 'the b64 file gone');
	});

	test('n=3 gives three images', { skip: !haveSdk && 'no openai SDK in test/client' }, async () => {
		const r = await client.images.generate({ prompt: 'Draw three boats', n: 3 });
		assert.equal(r.data.length, 3, JSON.stringify(r.data));
	});

	test('a prompt that does not say "draw" still gets an image', { skip: !haveSdk && 'no openai SDK in test/client' }, async () => {
		// What Open WebUI and other image clients send: a description.
		const r = await client.images.generate({ prompt: 'A red fox in the snow, watercolour', n: 1 });
		assert.equal(r.data.length, 1);
	});

	test('bad requests are 400 (plain HTTP)', async () => {
		for (const b of [{}, { prompt: '' }, { prompt: 'x', n: 0 }, { prompt: 'x', n: 'two' },
			{ prompt: 'x', response_format: 'png' }]) {
			const r = await post(d, '/v1/images/generations', b);
			assert.equal(r.status, 400, `${JSON.stringify(b)}: ${r.body}`);
			assert.ok(r.json?.error?.message);
		}
	});
});

// ---- the janitor -----------------------------------------------------------

describe('cache janitor', () => {
	const KB400 = 400 * 1024;
	let d, dir;
	const planted = new Set();
	const now = Date.now() / 1000;
	const name = (i) => `${i.toString(16).padStart(32, 'c')}.jpg`;
	const put = (f, ageS) => {
		const p = path.join(dir, f);
		planted.add(f);
		fs.writeFileSync(p, Buffer.alloc(KB400, 7));
		fs.utimesSync(p, now - ageS, now - ageS);
	};

	before(async () => {
		// Seven files of 400 KiB (2.7 MiB), f0 the oldest, against a limit
		// of 2 MiB: the janitor must delete f0 and f1 (then 1.95 MiB).
		const data = fs.mkdtempSync('/tmp/wpd-jan-');
		dir = path.join(data, 'data/temp/image');
		fs.mkdirSync(dir, { recursive: true });
		for (let i = 0; i < 7; i++) put(name(i), 10000 - i * 100);
		d = await startWithFake({ dir: data, tokens: tokenFile([TOK]),
			grok: { image_cache_max_size_mb: 2 } });
	});
	after(async () => { await stopAndClean(d); });

	const has = (i) => fs.existsSync(path.join(dir, name(i)));

	test('an over-limit cache is trimmed oldest first at start', async () => {
		await poll(() => !has(0) && !has(1), 3000, 'f0 and f1 swept');
		for (let i = 2; i < 7; i++) assert.ok(has(i), `f${i} was deleted`);
	});

	test('a download wakes the janitor at once', async () => {
		// The oldest file yet pushes the folder over the limit; the
		// janitor sleeps 10 s between passes unless woken. Beside it, a
		// temp file whose writer died long ago, and one being written.
		put(name(0x99), 20000);
		const stale = path.join(dir, '.tmp-stale1'), fresh = path.join(dir, '.tmp-fresh1');
		fs.writeFileSync(stale, 'x');
		fs.utimesSync(stale, now - 7200, now - 7200);
		fs.writeFileSync(fresh, Buffer.alloc(KB400));
		await sleep(200);
		assert.ok(has(0x99));
		const t0 = Date.now();
		const r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
			messages: userMsg('Draw a tree') });
		const links = imageLinks(nonStreamed(r));
		assert.equal(links.length, 2);
		await poll(() => !has(0x99), 2500, 'the oldest file swept after a download');
		assert.ok(Date.now() - t0 < 3000);
		for (let i = 2; i < 7; i++) assert.ok(has(i), `f${i} was deleted`);
		for (const l of links) assert.ok(fs.existsSync(path.join(dir, path.basename(l))),
			'the new download was deleted');
		assert.ok(!fs.existsSync(stale), 'a temp file abandoned 2 h ago is kept');
		assert.ok(fs.existsSync(fresh), 'a temp file being written was deleted');
		fs.rmSync(fresh);
	});

	test('a reload that lowers the limit takes effect at once', async () => {
		const links = fs.readdirSync(dir).filter((f) => !planted.has(f));
		assert.equal(links.length, 2);
		fs.writeFileSync(d.cfgPath, fs.readFileSync(d.cfgPath, 'utf8')
			.replace('image_cache_max_size_mb: 2', 'image_cache_max_size_mb: 1'));
		const from = d.log.length;
		d.signal('SIGHUP');
		await d.waitLog(/reload: generation 2/, 5000, from);
		// 1 MiB holds the two newest big files and the small downloads.
		await poll(() => !has(2) && !has(3) && !has(4), 2500, 'f2..f4 swept after the reload');
		assert.ok(has(5) && has(6), 'the newest were deleted');
		for (const l of links) assert.ok(fs.existsSync(path.join(dir, l)), `${l} deleted`);
		const total = fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
		assert.ok(total <= 1024 * 1024, `${total} bytes left`);
	});

	test('the cache sizes are published in /metrics', async () => {
		const files = fs.readdirSync(dir);
		const total = files.reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
		const metric = (body, name) => Number(body.match(
			new RegExp(`^${name}\\{kind="image"\\} (\\d+)$`, 'm'))?.[1]);
		let body = '';
		await poll(async () => {
			// (A connection dropped by the reload's worker handover is
			// the next test's business, not this one's.)
			body = (await raw(d.url(''), '/metrics').catch((e) => ({ body: e.message }))).body;
			return metric(body, 'webproxyd_cache_bytes') === total &&
				metric(body, 'webproxyd_cache_files') === files.length;
		}, 2000, `image cache of ${total} bytes in ${files.length} files in /metrics`)
			.catch((e) => { throw new Error(`${e.message}:\n${body}`); });
	});
});

describe('serving across reloads', () => {
	let d;
	before(async () => {
		d = await startWithFake({ tokens: tokenFile([TOK]),
			grok: { video_cache_max_size_mb: 100 } });
	});
	after(async () => { await stopAndClean(d); });

	test('cached files keep being served while a reload replaces the workers', async () => {
		const links = imageLinks(nonStreamed(await post(d, '/v1/chat/completions', {
			model: 'grok-3-fast', messages: userMsg('Draw a kite [images=1]') })));
		assert.equal(links.length, 1);
		const p = new URL(links[0]).pathname;
		const want = (await raw(d.url(''), p)).buf;
		let stop = false, ok = 0;
		const bad = [];
		const loop = async () => {
			while (!stop) {
				try {
					const r = await raw(d.url(''), p);
					if (r.status === 200 && r.buf.equals(want)) ok++;
					else bad.push(`${r.status}`);
				} catch (e) { bad.push(e.message); }
			}
		};
		const loops = Array.from({ length: 4 }, loop);
		try {
			for (let g = 2; g <= 4; g++) {
				fs.writeFileSync(d.cfgPath, fs.readFileSync(d.cfgPath, 'utf8')
					.replace(/video_cache_max_size_mb: \d+/, `video_cache_max_size_mb: ${100 + g}`));
				const from = d.log.length;
				d.signal('SIGHUP');
				await d.waitLog(new RegExp(`reload: generation ${g}\\b`), 5000, from);
				await sleep(150);
			}
		} finally {
			stop = true;
			await Promise.all(loops);
		}
		assert.ok(ok > 50, `only ${ok} answers`);
		assert.deepEqual(bad, [], `${bad.length} of ${ok + bad.length} requests failed`);
	});
});

// ---- an unwritable cache ------------------------------------------------

describe('unwritable cache folder', () => {
	let d;
	before(async () => {
		// data/temp/image and .../video are files: every cache write fails.
		const data = fs.mkdtempSync('/tmp/wpd-full-');
		fs.mkdirSync(path.join(data, 'data/temp'), { recursive: true });
		fs.writeFileSync(path.join(data, 'data/temp/image'), 'not a folder');
		fs.writeFileSync(path.join(data, 'data/temp/video'), 'not a folder');
		d = await startWithFake({ dir: data, tokens: tokenFile([TOK]) });
	});
	after(async () => { await stopAndClean(d); });

	test('images still answer, with the upstream asset URL', async () => {
		for (const stream of [false, true]) {
			const r = await post(d, '/v1/chat/completions', { model: 'grok-3-fast',
				stream, messages: userMsg('Draw a tree') });
			const content = stream ? streamed(r).content : nonStreamed(r);
			if (stream) assert.ok(streamed(r).done);
			const links = imageLinks(content);
			assert.equal(links.length, 2, content);
			for (const l of links) {
				assert.ok(l.startsWith(`${d.fake.url}/users/`), l);
				assert.match(l, /\/generated\/[0-9a-f-]{36}\/image\.jpg$/);
			}
		}
		assert.match(d.log, /warn.*(media|cache)/i);
	});

	test('video still answers, and the daemon keeps running', async () => {
		const s = streamed(await post(d, '/v1/chat/completions', { model: 'grok-imagine-0.9',
			stream: true, messages: userMsg('wave', [PNG.toString('base64')]) }));
		assert.ok(s.done);
		const v = videoLinks(s.content);
		assert.equal(v.length, 1, s.content);
		assert.ok(v[0].startsWith(`${d.fake.url}/users/`), v[0]);
		assert.equal((await raw(d.url(''), '/healthz')).status, 200);
		assert.equal(d.proc.exitCode, null);
		assert.equal(fs.readFileSync(path.join(d.dir, 'data/temp/image'), 'utf8'), 'not a folder');
	});
});
