// Hostile framing and sizes: request smuggling shapes are refused and
// the connection closed, oversized headers and bodies are refused
// without being read whole, and the daemon keeps serving.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';

import { request, startDaemon, tokenFile } from './lib.mjs';

let d;
before(async () => { d = await startDaemon({ workers: 1, tokens: tokenFile(['n1']) }); });
after(() => d.stop());

// Send raw bytes; resolve everything read until the server closes.
function raw(bytes, ms = 3000) {
	return new Promise((resolve, reject) => {
		const s = net.connect(d.port, '127.0.0.1');
		let out = '';
		const t = setTimeout(() => { s.destroy(); resolve({ out, closed: false }); }, ms);
		s.on('data', (b) => { out += b.toString(); });
		s.on('end', () => { clearTimeout(t); resolve({ out, closed: true }); });
		s.on('error', (e) => { clearTimeout(t); if (out) resolve({ out, closed: true }); else reject(e); });
		s.write(bytes);
	});
}

const SECOND = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';

test('Content-Length with Transfer-Encoding: 400, closed, nothing after served', async () => {
	const body = '5\r\nhello\r\n0\r\n\r\n';
	const r = await raw('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n' +
		'Content-Type: application/json\r\nContent-Length: 4\r\n' +
		`Transfer-Encoding: chunked\r\n\r\n${body}${SECOND}`);
	assert.match(r.out, /^HTTP\/1\.1 400 /);
	assert.match(r.out, /bad_framing/);
	assert.equal(r.closed, true);
	assert.equal((r.out.match(/HTTP\/1\.1 /g) || []).length, 1, r.out);
});

test('two different Content-Lengths: 400 and closed', async () => {
	const r = await raw('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n' +
		'Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}' + SECOND);
	assert.match(r.out, /^HTTP\/1\.1 400 /);
	assert.equal(r.closed, true);
	assert.equal((r.out.match(/HTTP\/1\.1 /g) || []).length, 1, r.out);
});

test('an announced body over max_body_bytes is refused before it is sent', async () => {
	const r = await raw('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n' +
		'Content-Type: application/json\r\nContent-Length: 999999999\r\n\r\n{"a":', 3000);
	assert.match(r.out, /^HTTP\/1\.1 413 /);
	assert.match(r.out, /request_too_large/);
});

// libmicrohttpd cannot queue an answer in the middle of a body, so a
// chunked body that grows past the cap gets its connection closed.
test('a chunked body that grows past max_body_bytes is cut off early', async () => {
	const small = await startDaemon({ workers: 1, server: { max_body_bytes: 4096 } });
	try {
		const port = small.port;
		let sent = 0;
		const r = await new Promise((resolve) => {
			const s = net.connect(port, '127.0.0.1');
			let out = '';
			s.on('data', (b) => { out += b.toString(); });
			s.on('close', () => resolve({ out, sent }));
			s.on('error', () => resolve({ out, sent }));
			s.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n' +
				'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
			const chunk = 'x'.repeat(1000);
			const iv = setInterval(() => {
				if (s.destroyed || sent > 200) { clearInterval(iv); s.destroy(); return; }
				s.write(`${(1000).toString(16)}\r\n${chunk}\r\n`);
				sent++;
			}, 5);
		});
		// Closed after a few KiB, long before the 200 KiB were sent.
		assert.ok(r.sent < 50, `read ${r.sent} KiB before closing`);
		assert.ok(r.out === '' || /^HTTP\/1\.1 413 /.test(r.out), r.out);
		assert.equal((await request(small.url('/healthz'))).status, 200);
	} finally { await small.stop(); }
});

// webproxyd(8): a request head up to 16 KiB is served, a longer one gets
// 431; a Cookie header is copied once more inside that buffer, so 8 KiB
// of it is the most.
test('request heads: 14 KB and a 7 KB Cookie are served; 20 KB gets 431', async () => {
	const head = (h) => raw(`GET /healthz HTTP/1.1\r\nHost: x\r\n${h}\r\n\r\n`);
	assert.match((await head(`X-Big: ${'a'.repeat(14000)}`)).out, /^HTTP\/1\.1 200 /);
	assert.match((await head(`Cookie: a=${'a'.repeat(7000)}`)).out, /^HTTP\/1\.1 200 /);
	assert.match((await head(`X-Big: ${'a'.repeat(20000)}`)).out, /^HTTP\/1\.1 431 /);
	assert.match((await head(`Cookie: a=${'a'.repeat(12000)}`)).out, /^HTTP\/1\.1 431 /);
});

test('headers over the limit are refused, the daemon keeps serving', async () => {
	const r = await raw(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100000)}\r\n\r\n`);
	assert.match(r.out, /^HTTP\/1\.1 4\d\d /);
	assert.equal((await request(d.url('/healthz'))).status, 200);
});

test('invalid UTF-8 and deeply nested JSON get a 400, not a crash', async () => {
	const post = (body) => request(d.url('/v1/chat/completions'), { method: 'POST',
		headers: { 'content-type': 'application/json' }, body });
	let r = await post(Buffer.from([0x7b, 0x22, 0x6d, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]));
	assert.equal(r.status, 400);
	r = await post('['.repeat(100000) + ']'.repeat(100000));
	assert.equal(r.status, 400);
	assert.equal((await request(d.url('/healthz'))).status, 200);
});

test('a model name cannot inject a header', async () => {
	const r = await request(d.url('/v1/chat/completions'), { method: 'POST',
		headers: { 'content-type': 'application/json' },
		body: JSON.stringify({ model: 'x\r\nSet-Cookie: evil=1', messages: [{ role: 'user', content: 'hi' }] }) });
	assert.equal(r.status, 404);
	assert.equal(r.headers['set-cookie'], undefined);
});
