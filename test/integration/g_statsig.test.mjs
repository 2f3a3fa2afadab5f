// x-statsig-id: generated with the configured prefix, fixed, or signed by
// an external signer (cached per method and path, asked again after a
// 403), as grok.com has accepted each in turn.
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';

import { chat, startWithFake, tokenFile } from './lib.mjs';

const MSG = [{ role: 'user', content: 'hi' }];

function statsigOf(rec) {
	const h = rec.headers || {};
	return h['x-statsig-id'] ?? h['X-Statsig-Id'];
}

async function chatRequests(d) {
	const all = await d.fake.requests();
	const list = Array.isArray(all) ? all : all.requests;
	return list.filter((r) => r.path === '/rest/app-chat/conversations/new');
}

test('dynamic statsig: fresh per request, text starts with statsig_prefix', async () => {
	const d = await startWithFake({ tokens: tokenFile(['n1']),
		grok: { statsig_prefix: 'z9:' } });
	try {
		for (let i = 0; i < 2; i++)
			assert.equal((await chat(d, { model: 'grok-3-fast', messages: MSG })).status, 200);
		const vals = (await chatRequests(d)).map(statsigOf);
		assert.equal(vals.length, 2);
		assert.notEqual(vals[0], vals[1]);
		for (const v of vals)
			assert.match(Buffer.from(v, 'base64').toString(), /^z9:TypeError: Cannot read properties of/);
	} finally { await d.stop(); }
});

test('fixed statsig when dynamic_statsig is off', async () => {
	const d = await startWithFake({ tokens: tokenFile(['n1']),
		grok: { dynamic_statsig: false, x_statsig_id: 'Zml4ZWQtdmFsdWU=' } });
	try {
		assert.equal((await chat(d, { model: 'grok-3-fast', messages: MSG })).status, 200);
		assert.deepEqual((await chatRequests(d)).map(statsigOf), ['Zml4ZWQtdmFsdWU=']);
	} finally { await d.stop(); }
});

test('a signer: asked per method and path, cached, asked again after a 403', async () => {
	const asked = [];
	let n = 0;
	const signer = http.createServer((req, res) => {
		let body = '';
		req.on('data', (c) => { body += c; });
		req.on('end', () => {
			asked.push(JSON.parse(body));
			n++;
			res.setHeader('content-type', 'application/json');
			res.end(JSON.stringify({ 'x-statsig-id': Buffer.from(`signed-${n}`).toString('base64') }));
		});
	});
	await new Promise((r) => signer.listen(0, '127.0.0.1', r));
	const url = `http://127.0.0.1:${signer.address().port}/sign`;
	const d = await startWithFake({ workers: 1, tokens: tokenFile(['n1', 'fault-403botx1-a']),
		grok: { statsig_signer_url: url } });
	try {
		// Tokens rotate: n1 first, then the token whose first answer is
		// a 403 anti-bot, which makes the daemon ask the signer anew.
		assert.equal((await chat(d, { model: 'grok-3-fast', messages: MSG })).status, 200);
		assert.equal((await chat(d, { model: 'grok-3-fast', messages: MSG })).status, 200);
		assert.equal((await chat(d, { model: 'grok-3-fast', messages: MSG })).status, 200);
		assert.deepEqual(asked[0], { method: 'POST', path: '/rest/app-chat/conversations/new' });
		const b = (s) => Buffer.from(s).toString('base64');
		const seen = (await chatRequests(d)).map(statsigOf);
		assert.deepEqual(seen, [b('signed-1'), b('signed-1'), b('signed-2'), b('signed-2')],
			'cached, then signed anew after the 403, then cached again');
		const chatAsks = asked.filter((a) => a.path === '/rest/app-chat/conversations/new').length;
		assert.equal(chatAsks, 2);
	} finally {
		await d.stop();
		signer.close();
	}
});

test('a signer that fails: the generated value is used and the request works', async () => {
	const d = await startWithFake({ tokens: tokenFile(['n1']),
		grok: { statsig_signer_url: 'http://127.0.0.1:9/sign', statsig_prefix: 'e:' } });
	try {
		const r = await chat(d, { model: 'grok-3-fast', messages: MSG });
		assert.equal(r.status, 200, r.body);
		const v = (await chatRequests(d)).map(statsigOf)[0];
		assert.match(Buffer.from(v, 'base64').toString(), /^e:TypeError/);
		assert.match(d.log, /statsig signer .*using a generated x-statsig-id/);
	} finally { await d.stop(); }
});
